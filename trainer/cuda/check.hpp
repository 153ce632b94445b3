// One check macro per native GPU library (CUDA runtime, cuBLAS, cuDNN, NCCL). Each turns a failed
// status into kestrel::TrainError naming the call, the library's own error text, file and line.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

namespace kestrel::trainer::cuda {

// Throw TrainError "<library> error <code> (<text>) in `<expr>` at <file>:<line>".
// An out-of-memory status says so first ("CUDA out of memory: ..."), so the engine can report
// the reason of a failed trial in words a user can act on.
[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* expr, const char* file, int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t s, const char* expr, const char* file, int line);
[[noreturn]] void throw_nccl_error(ncclResult_t r, const char* expr, const char* file, int line);

}  // namespace kestrel::trainer::cuda

#define KESTREL_CUDA_CHECK(expr)                                                          \
  do {                                                                                    \
    const cudaError_t kestrel_e_ = (expr);                                                \
    if (kestrel_e_ != cudaSuccess)                                                        \
      ::kestrel::trainer::cuda::throw_cuda_error(kestrel_e_, #expr, __FILE__, __LINE__);  \
  } while (0)

#define KESTREL_CUBLAS_CHECK(expr)                                                          \
  do {                                                                                      \
    const cublasStatus_t kestrel_s_ = (expr);                                               \
    if (kestrel_s_ != CUBLAS_STATUS_SUCCESS)                                                \
      ::kestrel::trainer::cuda::throw_cublas_error(kestrel_s_, #expr, __FILE__, __LINE__);  \
  } while (0)

#define KESTREL_CUDNN_CHECK(expr)                                                          \
  do {                                                                                     \
    const cudnnStatus_t kestrel_s_ = (expr);                                               \
    if (kestrel_s_ != CUDNN_STATUS_SUCCESS)                                                \
      ::kestrel::trainer::cuda::throw_cudnn_error(kestrel_s_, #expr, __FILE__, __LINE__);  \
  } while (0)

#define KESTREL_NCCL_CHECK(expr)                                                          \
  do {                                                                                    \
    const ncclResult_t kestrel_r_ = (expr);                                               \
    if (kestrel_r_ != ncclSuccess)                                                        \
      ::kestrel::trainer::cuda::throw_nccl_error(kestrel_r_, #expr, __FILE__, __LINE__);  \
  } while (0)

// Kernel launches report errors through cudaGetLastError (launch configuration) only.
#define KESTREL_CUDA_CHECK_LAUNCH() KESTREL_CUDA_CHECK(cudaGetLastError())
