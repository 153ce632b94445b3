// The backend-neutral op interface of the trainer: memory, and forward/backward pairs for every layer.
// The CPU backend (trainer/cpu/) implements it; a CUDA backend (trainer/cuda/) implements the same calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace kestrel::trainer {

// Sizes of one 2-D convolution (NCHW). Weight layout [c_out][c_in / groups][kh][kw] (PyTorch's).
struct ConvDims {
  int n = 0, c_in = 0, h = 0, w = 0;
  int c_out = 0, kh = 0, kw = 0;
  int stride = 1, pad = 0, groups = 1;
  int h_out() const { return (h + 2 * pad - kh) / stride + 1; }
  int w_out() const { return (w + 2 * pad - kw) / stride + 1; }
};

// Sizes of one pooling window sweep (NCHW, same window for every channel).
struct PoolDims {
  int n = 0, c = 0, h = 0, w = 0;
  int k = 2, stride = 2, pad = 0;
  int h_out() const { return (h + 2 * pad - k) / stride + 1; }
  int w_out() const { return (w + 2 * pad - k) / stride + 1; }
};

// Pointwise activations. GELU is the exact (erf) form, PyTorch's default.
enum class Activation { kReLU, kLeakyReLU, kGELU, kTanh, kSigmoid };

// What it represents: a compute device and the kernels that run on it. Every pointer an op takes is
// device memory obtained from alloc() of the same backend (host memory for the CPU backend); ops are
// synchronous from the caller's point of view (a later op or download() sees their results).
// Argument order follows llm.c: outputs first, then inputs, then sizes.
// Gradient convention: a backward op overwrites the gradients it produces unless it takes an
// `accumulate` flag and that flag is true, in which case it adds to them (a tensor read by several
// nodes collects its gradient from each). A null gradient pointer means "not wanted": the op skips
// that work (frozen parameters, inputs that need no gradient).
// Workspace: ops that need scratch memory say how many floats through *_workspace(); the caller
// passes at least that much. Ops never allocate.
// Thread safety: one backend object is used by one thread at a time (the ops parallelise inside).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // True when device memory is host memory (callers may pass host arrays to ops directly).
  virtual bool is_host() const { return false; }
  // Threads the backend may use inside one op (CPU); ignored by device backends.
  virtual void set_threads(int threads) = 0;

  // ---- memory ----
  // ensures: a buffer of n floats, 64-byte aligned, contents unspecified; freed by free().
  virtual float* alloc(size_t n) = 0;
  virtual void free(float* p) = 0;
  virtual void upload(float* dst, const float* host, size_t n) = 0;
  virtual void download(float* host, const float* src, size_t n) = 0;
  virtual void fill(float* dst, float value, size_t n) = 0;
  virtual void copy(float* dst, const float* src, size_t n) = 0;
  // dst = src (accumulate false) or dst += src (accumulate true).
  virtual void add_into(float* dst, const float* src, size_t n, bool accumulate) = 0;

  // ---- dense ----
  // out[n][out_f] = in[n][in_f] * w[out_f][in_f]^T + b (b may be null); relu: out = max(out, 0)
  // fused in (a Linear followed by ReLU writes the ReLU's output directly, saving a pass).
  virtual void linear_forward(float* out, const float* in, const float* w, const float* b, int n,
                              int in_f, int out_f, bool relu) = 0;
  // din (accumulate-able), dw, db: any may be null.
  virtual void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                               const float* w, int n, int in_f, int out_f, bool accumulate) = 0;

  // ---- convolution ----
  virtual size_t conv2d_workspace(const ConvDims& d) const = 0;
  // relu: as linear_forward (applied per sample while its output is still in cache).
  virtual void conv2d_forward(float* out, const float* in, const float* w, const float* b,
                              float* workspace, const ConvDims& d, bool relu) = 0;
  virtual void conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                               const float* w, float* workspace, const ConvDims& d,
                               bool accumulate) = 0;

  // ---- pooling ----
  virtual void maxpool_forward(float* out, const float* in, const PoolDims& d) = 0;
  // relu_input: `in` is the output of a ReLU and din is the gradient w.r.t. that ReLU's input, so
  // the ReLU's backward is folded in (a window passes its gradient only when its maximum is > 0).
  virtual void maxpool_backward(float* din, const float* dout, const float* in, const float* out,
                                const PoolDims& d, bool accumulate, bool relu_input) = 0;
  // Average over the window, padding counted as zeros (PyTorch's count_include_pad=True).
  virtual void avgpool_forward(float* out, const float* in, const PoolDims& d) = 0;
  virtual void avgpool_backward(float* din, const float* dout, const PoolDims& d, bool accumulate) = 0;
  // out[n][c] = mean over h*w of in[n][c].
  virtual void global_avgpool_forward(float* out, const float* in, int n, int c, int hw) = 0;
  virtual void global_avgpool_backward(float* din, const float* dout, int n, int c, int hw,
                                       bool accumulate) = 0;

  // ---- normalisation ----
  // Training mode: normalise by batch statistics over (n, hw) per channel, store mean and 1/std in
  // save_mean / save_invstd (c floats each) for backward, and update the running statistics as
  // PyTorch does (running = (1 - momentum) * running + momentum * batch, unbiased batch variance).
  virtual void batchnorm_forward_train(float* out, float* save_mean, float* save_invstd,
                                       float* running_mean, float* running_var, const float* in,
                                       const float* gamma, const float* beta, int n, int c, int hw,
                                       float eps, float momentum) = 0;
  // Evaluation mode: normalise by the running statistics.
  virtual void batchnorm_forward_eval(float* out, const float* in, const float* gamma,
                                      const float* beta, const float* running_mean,
                                      const float* running_var, int n, int c, int hw, float eps) = 0;
  // Backward of the training-mode forward (uses the saved batch statistics).
  virtual void batchnorm_backward_train(float* din, float* dgamma, float* dbeta, const float* dout,
                                        const float* in, const float* gamma, const float* save_mean,
                                        const float* save_invstd, int n, int c, int hw,
                                        bool accumulate) = 0;
  // Backward of the evaluation-mode forward (running statistics are constants).
  virtual void batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                                       const float* in, const float* gamma,
                                       const float* running_mean, const float* running_var, int n,
                                       int c, int hw, float eps, bool accumulate) = 0;

  // ---- dropout ----
  // mask[i] = 0 with probability p, else 1 / (1 - p); out = in * mask. The mask is a pure function
  // of (seed, counter, i) so every backend draws the same one and a resumed run redraws it.
  virtual void dropout_forward(float* out, float* mask, const float* in, size_t n, float p,
                               uint64_t seed, uint64_t counter) = 0;
  virtual void dropout_backward(float* din, const float* dout, const float* mask, size_t n,
                                bool accumulate) = 0;

  // ---- pointwise ----
  // alpha: LeakyReLU negative slope (ignored by the others).
  virtual void activation_forward(float* out, const float* in, size_t n, Activation a,
                                  float alpha) = 0;
  // Uses the forward input `in` (and output `out`, which tanh and sigmoid need). ReLU reads only
  // `out` (out > 0 exactly where in > 0), so a ReLU fused into the layer before it needs no input.
  virtual void activation_backward(float* din, const float* dout, const float* in, const float* out,
                                   size_t n, Activation a, float alpha, bool accumulate) = 0;

  // ---- channel concatenation (NCHW, per sample blocks) ----
  // Copies in[n][c_part][hw] into out[n][c_total][hw] at channel offset c_offset.
  virtual void concat_forward_part(float* out, const float* in, int n, int c_part, int c_total,
                                   int c_offset, int hw) = 0;
  virtual void concat_backward_part(float* din, const float* dout, int n, int c_part, int c_total,
                                    int c_offset, int hw, bool accumulate) = 0;

  // ---- losses (mean over the batch) ----
  // Softmax cross-entropy with label smoothing eps (target = (1 - eps) one-hot + eps / k).
  // Writes dlogits = d(mean loss)/d(logits) when dlogits is non-null. Returns on the host the summed
  // (not averaged) loss in *loss_sum and the number of argmax hits in *correct.
  virtual void softmax_xent(float* dlogits, double* loss_sum, int64_t* correct, const float* logits,
                            const int32_t* labels, int n, int k, float smoothing) = 0;
  // Mean squared error over all n*k elements; dpred = d(mean)/d(pred) when non-null. *loss_sum is
  // the sum over samples of the per-sample mean, so loss_sum / n is the batch loss.
  virtual void mse(float* dpred, double* loss_sum, const float* pred, const float* target, int n,
                   int k) = 0;
  // Labels live in device memory too; the CPU backend stores them in float-sized slots.
  virtual int32_t* alloc_labels(size_t n) = 0;
  virtual void free_labels(int32_t* p) = 0;
  virtual void upload_labels(int32_t* dst, const int32_t* host, size_t n) = 0;
};

// The CPU backend (Eigen + OpenMP). threads <= 0 means all hardware threads.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

// Backends other than the CPU one register a factory under a kind name ("cuda") so the trainer
// can create them from a device string without depending on them. index: the N of "cuda:N".
using BackendFactory = std::function<std::unique_ptr<Backend>(int index, int threads)>;
// Thread-safe; a later registration under the same kind replaces the earlier one.
void register_backend(const std::string& kind, BackendFactory factory);
// device: "cpu", "<kind>" (index 0) or "<kind>:<index>". throws ConfigError for a malformed device
// or a kind nobody registered (e.g. "cuda" in a build without the CUDA backend).
std::unique_ptr<Backend> make_backend(const std::string& device, int threads = 0);

}  // namespace kestrel::trainer
