// The CUDA implementation of the trainer's op interface: cuBLAS GEMMs, cuDNN convolutions, own
// kernels for the rest, plus fused optimizer steps (Adam/AdamW, SGD) on device memory.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "trainer/backend.hpp"
#include "trainer/cuda/memory_pool.hpp"

// Opaque library handles, so this header stays includable from plain C++ without CUDA headers.
struct CUstream_st;
struct cublasContext;
struct cudnnContext;

namespace kestrel::trainer::cuda {

struct CudaOptions {
  int device = 0;
  // TF32 tensor cores for GEMMs and convolutions (10-bit mantissa products). Off: FP32 FMA only,
  // which is what the CPU parity tests compare against.
  bool tf32 = false;
  // Mixed precision for Linear layers: GEMM operands rounded to bf16 (8-bit mantissa) on the fly,
  // products accumulated in FP32, results FP32. Weights, gradients and optimizer state stay FP32
  // (the master copy); only each GEMM's inputs are bf16.
  bool bf16 = false;
};

// Settings of one fused Adam/AdamW step; the update is the CPU Optimizer's (torch.optim.Adam /
// AdamW) element for element. step is the 1-based per-parameter step count (bias correction).
struct AdamStep {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  bool decoupled = false;  // AdamW
  int64_t step = 1;
};

// Settings of one fused SGD step (torch.optim.SGD); step 1 starts the momentum buffer as a copy
// of the gradient, as PyTorch does.
struct SgdStep {
  float lr = 1e-2f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
  int64_t step = 1;
};

// What it represents: one CUDA device as a compute device for the trainer. Memory comes from a
// caching pool (MemoryPool), so re-planning or a steady loop makes no cudaMalloc. All work runs
// in order on one stream owned by the backend; upload() and download() synchronise with it, so
// ops are synchronous from the caller's point of view as Backend requires.
// Numerics: FP32 everywhere (TF32 only when CudaOptions::tf32); reductions accumulate in double
// like the CPU reference; cuDNN algorithms are chosen once per convolution shape by
// cudnnFind*Algorithm, preferring deterministic ones.
// Workspace: cuDNN's scratch is held inside the backend (sized by the chosen algorithms, grown
// only when a new shape is first seen), so conv2d_workspace() returns 0.
// Thread safety: as Backend (one caller thread at a time). Construction selects the device on the
// calling thread.
// throws TrainError (check macros) for any CUDA, cuBLAS or cuDNN failure, e.g. out of memory.
class CudaBackend final : public Backend {
 public:
  // requires: device_count() > 0 and options.device < device_count(); throws TrainError otherwise.
  explicit CudaBackend(CudaOptions options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  void set_threads(int) override {}
  const CudaOptions& options() const { return options_; }
  MemoryPool& pool() { return *pool_; }
  // The stream every op runs on (for collectives that must follow the ops, e.g. NCCL).
  CUstream_st* stream() const { return stream_; }
  // Blocks until all queued work has finished (e.g. before reading a timer).
  void synchronize();

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

  // ---- fused optimizer steps (one kernel over a flat parameter range, device memory) ----
  // vmax: AMSGrad's running maximum (nullptr: plain Adam).
  void adam_step(float* w, const float* g, float* m, float* v, float* vmax, size_t n,
                 const AdamStep& s);
  // buf: momentum buffer (ignored when momentum == 0).
  void sgd_step(float* w, const float* g, float* buf, size_t n, const SgdStep& s);

  // ---- batches from a data set kept on the device ----
  // dst[i][:] = src[index[i]][:] for i < n (rows of `row` floats); labels likewise. index is
  // device memory from alloc_labels(). Lets a loop shuffle on the device instead of copying
  // every batch from the host.
  void gather_rows(float* dst, const float* src, const int32_t* index, int n, size_t row);
  void gather_labels(int32_t* dst, const int32_t* src, const int32_t* index, int n);

 private:
  struct ConvPlan;
  using ConvKey = std::tuple<int, int, int, int, int, int, int, int, int, int>;
  ConvPlan& conv_plan(const ConvDims& d);
  void* scratch(size_t bytes);  // backend-owned scratch (grown, never shrunk)
  // C = op(A) op(B) as gemm_rm, through bf16 copies of A and B when options_.bf16.
  void linear_gemm(bool ta, bool tb, int m, int n, int k, const float* a, size_t a_size, const float* b,
                   size_t b_size, float beta, float* c);

  CudaOptions options_;
  std::unique_ptr<MemoryPool> pool_;
  CUstream_st* stream_ = nullptr;
  cublasContext* cublas_ = nullptr;
  cudnnContext* cudnn_ = nullptr;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> conv_plans_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  float* ones_ = nullptr;  // a vector of ones for bias gradients by GEMV
  void* bf16_ = nullptr;   // bf16 operand copies (grown, never shrunk)
  size_t bf16_bytes_ = 0;
  size_t ones_n_ = 0;
  void* host_result_ = nullptr;  // pinned: loss sums and hit counts read back each step
};

// A CUDA backend on options.device. throws TrainError when there is no usable device.
std::unique_ptr<Backend> make_cuda_backend(CudaOptions options = {});

}  // namespace kestrel::trainer::cuda
