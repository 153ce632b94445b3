// Device detection (cudaGetDeviceCount once, errors mean "no GPU") and the error texts behind the
// check macros of check.hpp.
#include "trainer/cuda/device.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include "common/error.hpp"
#include "trainer/cuda/check.hpp"

namespace kestrel::trainer::cuda {
namespace {

struct Detection {
  int count = 0;
  std::string reason;
};

const Detection& detection() {
  static const Detection d = [] {
    Detection r;
    int n = 0;  // left unwritten by the runtime when it fails
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky error so later CPU-only code sees none
      r.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + " (" +
                 cudaGetErrorString(e) + ")";
    } else if (n <= 0) {
      r.reason = "the CUDA runtime reports 0 devices";
    } else {
      r.count = n;
    }
    if (r.count == 0) std::fprintf(stderr, "kestrel: no CUDA device, using the CPU (%s)\n", r.reason.c_str());
    return r;
  }();
  return d;
}

std::string where(const char* expr, const char* file, int line) {
  return std::string(" in `") + expr + "` at " + file + ":" + std::to_string(line);
}

}  // namespace

int device_count() { return detection().count; }

std::string no_device_reason() { return detection().reason; }

std::string describe_device(int index) {
  if (index < 0 || index >= device_count()) return "no CUDA device " + std::to_string(index);
  cudaDeviceProp p{};
  const cudaError_t e = cudaGetDeviceProperties(&p, index);
  if (e != cudaSuccess) return std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorName(e);
  int driver = 0;
  (void)cudaDriverGetVersion(&driver);
  char buf[768];
  std::snprintf(buf, sizeof buf, "%s, sm_%d%d, %.1f GiB, %d SMs, driver %d.%d", p.name, p.major,
                p.minor, static_cast<double>(p.totalGlobalMem) / (1 << 30), p.multiProcessorCount,
                driver / 1000, (driver % 1000) / 10);
  return buf;
}

void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();
  std::string msg = e == cudaErrorMemoryAllocation ? "CUDA out of memory: " : "CUDA error: ";
  msg += std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")" + where(expr, file, line);
  throw TrainError(msg);
}

void throw_cublas_error(cublasStatus_t s, const char* expr, const char* file, int line) {
  std::string msg = s == CUBLAS_STATUS_ALLOC_FAILED ? "CUDA out of memory: " : "cuBLAS error: ";
  msg += std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ")" + where(expr, file, line);
  throw TrainError(msg);
}

void throw_cudnn_error(cudnnStatus_t s, const char* expr, const char* file, int line) {
  std::string msg = s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ? "CUDA out of memory: " : "cuDNN error: ";
  msg += std::to_string(static_cast<int>(s)) + " (" + cudnnGetErrorString(s) + ")" + where(expr, file, line);
  throw TrainError(msg);
}

void throw_nccl_error(ncclResult_t r, const char* expr, const char* file, int line) {
  throw TrainError("NCCL error: " + std::to_string(static_cast<int>(r)) + " (" + ncclGetErrorString(r) +
                   ")" + where(expr, file, line));
}

}  // namespace kestrel::trainer::cuda
