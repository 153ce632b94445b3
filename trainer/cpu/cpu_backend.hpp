// The CPU implementation of the trainer's op interface (Eigen GEMM + OpenMP loops).
// It is also the reference every other backend is tested against.
#pragma once

#include "trainer/backend.hpp"

namespace kestrel::trainer::cpu {

// What it represents: the host as a compute device. Memory is 64-byte aligned host memory.
// Parallelism: convolutions split the batch across threads (each thread runs its own small GEMMs
// and keeps its own weight-gradient partial, summed in thread order so results do not depend on
// scheduling); Linear layers use Eigen's threaded GEMM; pointwise ops use OpenMP loops.
// Determinism: for a fixed thread count every op gives bit-identical results run after run.
// Thread safety: as Backend (one caller thread at a time).
class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads = 0);
  std::string name() const override { return "cpu"; }
  bool is_host() const override { return true; }
  void set_threads(int threads) override;
  int threads() const { return threads_; }

  float* alloc(size_t n) override;
  void free(float* p) override;
  void upload(float* dst, const float* host, size_t n) override;
  void download(float* host, const float* src, size_t n) override;
  void fill(float* dst, float value, size_t n) override;
  void copy(float* dst, const float* src, size_t n) override;
  void add_into(float* dst, const float* src, size_t n, bool accumulate) override;

  void linear_forward(float* out, const float* in, const float* w, const float* b, int n, int in_f,
                      int out_f, bool relu) override;
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                       const float* w, int n, int in_f, int out_f, bool accumulate) override;

  size_t conv2d_workspace(const ConvDims& d) const override;
  void conv2d_forward(float* out, const float* in, const float* w, const float* b, float* workspace,
                      const ConvDims& d, bool relu) override;
  void conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                       const float* w, float* workspace, const ConvDims& d, bool accumulate) override;

  void maxpool_forward(float* out, const float* in, const PoolDims& d) override;
  void maxpool_backward(float* din, const float* dout, const float* in, const float* out,
                        const PoolDims& d, bool accumulate, bool relu_input) override;
  void avgpool_forward(float* out, const float* in, const PoolDims& d) override;
  void avgpool_backward(float* din, const float* dout, const PoolDims& d, bool accumulate) override;
  void global_avgpool_forward(float* out, const float* in, int n, int c, int hw) override;
  void global_avgpool_backward(float* din, const float* dout, int n, int c, int hw,
                               bool accumulate) override;

  void batchnorm_forward_train(float* out, float* save_mean, float* save_invstd, float* running_mean,
                               float* running_var, const float* in, const float* gamma,
                               const float* beta, int n, int c, int hw, float eps,
                               float momentum) override;
  void batchnorm_forward_eval(float* out, const float* in, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, int n, int c,
                              int hw, float eps) override;
  void batchnorm_backward_train(float* din, float* dgamma, float* dbeta, const float* dout,
                                const float* in, const float* gamma, const float* save_mean,
                                const float* save_invstd, int n, int c, int hw,
                                bool accumulate) override;
  void batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* running_mean,
                               const float* running_var, int n, int c, int hw, float eps,
                               bool accumulate) override;

  void dropout_forward(float* out, float* mask, const float* in, size_t n, float p, uint64_t seed,
                       uint64_t counter) override;
  void dropout_backward(float* din, const float* dout, const float* mask, size_t n,
                        bool accumulate) override;

  void activation_forward(float* out, const float* in, size_t n, Activation a, float alpha) override;
  void activation_backward(float* din, const float* dout, const float* in, const float* out, size_t n,
                           Activation a, float alpha, bool accumulate) override;

  void concat_forward_part(float* out, const float* in, int n, int c_part, int c_total, int c_offset,
                           int hw) override;
  void concat_backward_part(float* din, const float* dout, int n, int c_part, int c_total,
                            int c_offset, int hw, bool accumulate) override;

  void softmax_xent(float* dlogits, double* loss_sum, int64_t* correct, const float* logits,
                    const int32_t* labels, int n, int k, float smoothing) override;
  void mse(float* dpred, double* loss_sum, const float* pred, const float* target, int n,
           int k) override;
  int32_t* alloc_labels(size_t n) override;
  void free_labels(int32_t* p) override;
  void upload_labels(int32_t* dst, const int32_t* host, size_t n) override;

 private:
  int threads_ = 1;
};

// The dropout keep/drop draw shared by every backend: uniform in [0, 1) from (seed, counter, i).
float dropout_uniform(uint64_t seed, uint64_t counter, uint64_t i);

}  // namespace kestrel::trainer::cpu
