// Shared pieces of the CUDA parity tests: a fixture with a CPU reference and a CUDA backend (it
// skips with the reason when there is no device), device buffers, and an element-wise comparison
// with an absolute + relative tolerance (llm.c's validate_result).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "trainer/cpu/cpu_backend.hpp"
#include "trainer/cuda/cuda_backend.hpp"
#include "trainer/cuda/device.hpp"

namespace kestrel::trainer::cuda::testing {

// Random floats, normal(mean 0, sd) from a fixed seed.
inline std::vector<float> random_vector(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A device buffer filled from a host vector (and read back).
class DeviceBuf {
 public:
  DeviceBuf(Backend& b, const std::vector<float>& host) : b_(b), n_(host.size()) {
    p_ = b_.alloc(n_);
    b_.upload(p_, host.data(), n_);
  }
  DeviceBuf(Backend& b, size_t n, float value = 0.0f) : b_(b), n_(n) {
    p_ = b_.alloc(n_);
    b_.fill(p_, value, n_);
  }
  ~DeviceBuf() { b_.free(p_); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  float* get() const { return p_; }
  std::vector<float> host() const {
    std::vector<float> v(n_);
    b_.download(v.data(), p_, n_);
    return v;
  }

 private:
  Backend& b_;
  size_t n_;
  float* p_ = nullptr;
};

// Every |got - want| <= atol + rtol * |want|; NaN must meet NaN. Reports the worst element.
inline ::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                            double atol, double rtol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  size_t bad = 0, worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) {
        ++bad;
        if (worst_excess < 1e30) worst_excess = 1e30, worst = i;
      }
      continue;
    }
    const double excess = std::abs(g - w) - (atol + rtol * std::abs(w));
    if (excess > 0) ++bad;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements differ; worst at "
                                       << worst << ": got " << got[worst] << ", want " << want[worst]
                                       << " (atol " << atol << ", rtol " << rtol << ")";
}

// Tolerances, each with its reason.
// FP32 GEMM/convolution: cuBLAS/cuDNN sum the same products in another order (and with FMA);
// a float sum of N terms whose partial sums reach S carries ~sqrt(N)·S·2^-24 of rounding, a few
// 1e-6 for the sums of up to ~300 terms used with these tolerances (a wrong index gives O(1)).
constexpr double kGemmAtol = 5e-5, kGemmRtol = 1e-4;
// Long FP32 reductions (convolution weight and bias gradients: n·h_out·w_out ≈ 2,700 unit-scale
// products with partial sums up to ~50): sqrt(2700)·50·2^-24 ≈ 2e-4 on either side.
constexpr double kLongSumAtol = 1e-3, kLongSumRtol = 1e-4;
// Pointwise FP32 math: CUDA's erff/expf/tanhf are within 2 ulp, glibc's within 1 ulp.
constexpr double kPointwiseAtol = 1e-6, kPointwiseRtol = 1e-5;
// Reductions accumulated in double on both sides, rounded once to float: 1-2 ulp.
constexpr double kReduceAtol = 1e-6, kReduceRtol = 1e-5;

// A CPU reference (one thread: the reference's own results do not depend on threads anyway) and a
// CUDA backend on device 0. Skips every test when no device is usable.
class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device: " << no_device_reason();
    cpu_ = std::make_unique<cpu::CpuBackend>(1);
    gpu_ = std::make_unique<CudaBackend>(CudaOptions{});
  }
  std::unique_ptr<cpu::CpuBackend> cpu_;
  std::unique_ptr<CudaBackend> gpu_;
};

}  // namespace kestrel::trainer::cuda::testing
