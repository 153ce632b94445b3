// CUDA kernels and library calls of the trainer's CUDA backend. Each op mirrors the CPU reference
// in trainer/cpu/cpu_backend.cpp (same semantics, NaN handling, gradient routing), so the parity
// tests in tests/trainer_cuda can compare them element by element.
#include "trainer/cuda/cuda_backend.hpp"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/error.hpp"
#include "trainer/cuda/check.hpp"
#include "trainer/cuda/device.hpp"

namespace kestrel::trainer::cuda {
namespace {

constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements (capped: each thread then takes several).
inline unsigned grid_for(size_t n) {
  const size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(blocks, 1u << 16)));
}

#define KESTREL_GRID_STRIDE(i, n)                                                        \
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<size_t>(blockDim.x) * gridDim.x)

__device__ inline void store(float* dst, float v, bool accumulate) {
  if (accumulate) *dst += v;
  else *dst = v;
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in
// every thread. Double, like the CPU reference's accumulators.
__device__ double block_sum(double v) {
  __shared__ double partial[32];
  __shared__ double total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    double s = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// ---------------------------------------------------------------- elementwise

__global__ void fill_kernel(float* dst, float v, size_t n) {
  KESTREL_GRID_STRIDE(i, n) dst[i] = v;
}

__global__ void add_kernel(float* dst, const float* src, size_t n) {
  KESTREL_GRID_STRIDE(i, n) dst[i] += src[i];
}

// out[i] += b[(i / inner) % c] (b may be null), then ReLU (NaN passes through, as on the CPU).
__global__ void bias_relu_kernel(float* out, const float* b, size_t n, int inner, int c, bool relu) {
  KESTREL_GRID_STRIDE(i, n) {
    float v = out[i];
    if (b) v += b[(i / inner) % c];
    if (relu) v = v < 0.0f ? 0.0f : v;
    out[i] = v;
  }
}

// Per-channel sum over (n, inner) of x[n][c][inner]: one block per channel.
__global__ void channel_sum_kernel(float* out, const float* x, int n, int c, int inner) {
  const int ch = blockIdx.x;
  const size_t count = static_cast<size_t>(n) * inner;
  double s = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t smp = i / inner, j = i % inner;
    s += x[(smp * c + ch) * inner + j];
  }
  s = block_sum(s);
  if (threadIdx.x == 0) out[ch] = static_cast<float>(s);
}

// ---------------------------------------------------------------- pooling

__global__ void maxpool_forward_kernel(float* out, const float* in, PoolDims d, int ho, int wo) {
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  KESTREL_GRID_STRIDE(i, total) {
    const int ox = static_cast<int>(i % wo), oy = static_cast<int>((i / wo) % ho);
    const size_t p = i / (static_cast<size_t>(wo) * ho);
    const float* x = in + p * d.h * d.w;
    const int y0 = max(0, oy * d.stride - d.pad), y1 = min(d.h, oy * d.stride - d.pad + d.k);
    const int x0 = max(0, ox * d.stride - d.pad), x1 = min(d.w, ox * d.stride - d.pad + d.k);
    float m = -INFINITY;
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) {
        const float v = x[iy * d.w + ix];
        if (v > m || v != v) m = v;
      }
    out[i] = m;
  }
}

// The gradient of each window goes to its first maximum in scan order (the CPU's and PyTorch's
// choice). Windows may overlap (stride < k), hence atomicAdd.
__global__ void maxpool_backward_kernel(float* din, const float* dout, const float* in,
                                        const float* out, PoolDims d, int ho, int wo,
                                        bool relu_input) {
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  KESTREL_GRID_STRIDE(i, total) {
    const float m = out[i];
    if (relu_input && !(m > 0.0f)) continue;
    const int ox = static_cast<int>(i % wo), oy = static_cast<int>((i / wo) % ho);
    const size_t p = i / (static_cast<size_t>(wo) * ho);
    const float* x = in + p * d.h * d.w;
    const int y0 = max(0, oy * d.stride - d.pad), y1 = min(d.h, oy * d.stride - d.pad + d.k);
    const int x0 = max(0, ox * d.stride - d.pad), x1 = min(d.w, ox * d.stride - d.pad + d.k);
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix)
        if (x[iy * d.w + ix] == m) {
          atomicAdd(din + p * d.h * d.w + iy * d.w + ix, dout[i]);
          iy = y1;  // first maximum only
          break;
        }
  }
}

__global__ void avgpool_forward_kernel(float* out, const float* in, PoolDims d, int ho, int wo) {
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  const float scale = 1.0f / static_cast<float>(d.k * d.k);
  KESTREL_GRID_STRIDE(i, total) {
    const int ox = static_cast<int>(i % wo), oy = static_cast<int>((i / wo) % ho);
    const size_t p = i / (static_cast<size_t>(wo) * ho);
    const float* x = in + p * d.h * d.w;
    const int y0 = max(0, oy * d.stride - d.pad), y1 = min(d.h, oy * d.stride - d.pad + d.k);
    const int x0 = max(0, ox * d.stride - d.pad), x1 = min(d.w, ox * d.stride - d.pad + d.k);
    float s = 0.0f;
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) s += x[iy * d.w + ix];
    out[i] = s * scale;
  }
}

// Gathers, per input position, the windows that cover it (deterministic, no atomics).
__global__ void avgpool_backward_kernel(float* din, const float* dout, PoolDims d, int ho, int wo,
                                        bool accumulate) {
  const size_t total = static_cast<size_t>(d.n) * d.c * d.h * d.w;
  const float scale = 1.0f / static_cast<float>(d.k * d.k);
  KESTREL_GRID_STRIDE(i, total) {
    const int ix = static_cast<int>(i % d.w), iy = static_cast<int>((i / d.w) % d.h);
    const size_t p = i / (static_cast<size_t>(d.w) * d.h);
    const float* g = dout + p * ho * wo;
    // Windows oy with oy*stride - pad <= iy < oy*stride - pad + k.
    const int oy0 = max(0, (iy + d.pad - d.k + d.stride) / d.stride);
    const int oy1 = min(ho - 1, (iy + d.pad) / d.stride);
    const int ox0 = max(0, (ix + d.pad - d.k + d.stride) / d.stride);
    const int ox1 = min(wo - 1, (ix + d.pad) / d.stride);
    float s = 0.0f;
    for (int oy = oy0; oy <= oy1; ++oy)
      for (int ox = ox0; ox <= ox1; ++ox) s += g[oy * wo + ox] * scale;
    store(din + i, s, accumulate);
  }
}

__global__ void global_avgpool_forward_kernel(float* out, const float* in, int planes, int hw) {
  // One warp per plane.
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= planes) return;
  const float* x = in + static_cast<size_t>(warp) * hw;
  float s = 0.0f;
  for (int j = lane; j < hw; j += 32) s += x[j];
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if (lane == 0) out[warp] = s / static_cast<float>(hw);
}

__global__ void global_avgpool_backward_kernel(float* din, const float* dout, size_t total, int hw,
                                               bool accumulate) {
  KESTREL_GRID_STRIDE(i, total) store(din + i, dout[i / hw] / static_cast<float>(hw), accumulate);
}

// ---------------------------------------------------------------- batch norm (block per channel)

__global__ void bn_forward_train_kernel(float* out, float* save_mean, float* save_invstd,
                                        float* running_mean, float* running_var, const float* in,
                                        const float* gamma, const float* beta, int n, int c, int hw,
                                        float eps, float momentum) {
  const int ch = blockIdx.x;
  const size_t count = static_cast<size_t>(n) * hw;
  auto at = [&](size_t i) { return ((i / hw) * c + ch) * hw + i % hw; };
  double s = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) s += in[at(i)];
  const double mean = block_sum(s) / static_cast<double>(count);
  double ss = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double dv = in[at(i)] - mean;
    ss += dv * dv;
  }
  ss = block_sum(ss);
  const double var = ss / static_cast<double>(count);
  const float invstd = static_cast<float>(1.0 / sqrt(var + eps));
  if (threadIdx.x == 0) {
    save_mean[ch] = static_cast<float>(mean);
    save_invstd[ch] = invstd;
    const double unbiased = count > 1 ? ss / static_cast<double>(count - 1) : var;
    running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
    running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
  }
  const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
  const float scale = g * invstd, shift = b - static_cast<float>(mean) * scale;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t k = at(i);
    out[k] = in[k] * scale + shift;
  }
}

__global__ void bn_forward_eval_kernel(float* out, const float* in, const float* gamma,
                                       const float* beta, const float* running_mean,
                                       const float* running_var, size_t total, int c, int hw,
                                       float eps) {
  KESTREL_GRID_STRIDE(i, total) {
    const int ch = static_cast<int>((i / hw) % c);
    const float invstd = 1.0f / sqrtf(running_var[ch] + eps);
    const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
    const float scale = g * invstd, shift = b - running_mean[ch] * scale;
    out[i] = in[i] * scale + shift;
  }
}

__global__ void bn_backward_train_kernel(float* din, float* dgamma, float* dbeta, const float* dout,
                                         const float* in, const float* gamma,
                                         const float* save_mean, const float* save_invstd, int n,
                                         int c, int hw, bool accumulate) {
  const int ch = blockIdx.x;
  const size_t count = static_cast<size_t>(n) * hw;
  auto at = [&](size_t i) { return ((i / hw) * c + ch) * hw + i % hw; };
  const float mean = save_mean[ch], invstd = save_invstd[ch];
  double sdy = 0.0, sdyx = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t k = at(i);
    sdy += dout[k];
    sdyx += dout[k] * (in[k] - mean) * invstd;
  }
  sdy = block_sum(sdy);
  sdyx = block_sum(sdyx);
  if (threadIdx.x == 0) {
    if (dgamma) dgamma[ch] = static_cast<float>(sdyx);
    if (dbeta) dbeta[ch] = static_cast<float>(sdy);
  }
  if (!din) return;
  const float k = (gamma ? gamma[ch] : 1.0f) * invstd;
  const float mdy = static_cast<float>(sdy / count), mdyx = static_cast<float>(sdyx / count);
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t j = at(i);
    const float xhat = (in[j] - mean) * invstd;
    store(din + j, k * (dout[j] - mdy - xhat * mdyx), accumulate);
  }
}

__global__ void bn_backward_eval_kernel(float* din, float* dgamma, float* dbeta, const float* dout,
                                        const float* in, const float* gamma,
                                        const float* running_mean, const float* running_var, int n,
                                        int c, int hw, float eps, bool accumulate) {
  const int ch = blockIdx.x;
  const size_t count = static_cast<size_t>(n) * hw;
  auto at = [&](size_t i) { return ((i / hw) * c + ch) * hw + i % hw; };
  const float invstd = 1.0f / sqrtf(running_var[ch] + eps), mean = running_mean[ch];
  const float k = (gamma ? gamma[ch] : 1.0f) * invstd;
  double sdy = 0.0, sdyx = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const size_t j = at(i);
    sdy += dout[j];
    sdyx += dout[j] * (in[j] - mean) * invstd;
    if (din) store(din + j, k * dout[j], accumulate);
  }
  sdy = block_sum(sdy);
  sdyx = block_sum(sdyx);
  if (threadIdx.x == 0) {
    if (dgamma) dgamma[ch] = static_cast<float>(sdyx);
    if (dbeta) dbeta[ch] = static_cast<float>(sdy);
  }
}

// ---------------------------------------------------------------- dropout, activations, concat

__device__ inline uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Bit-identical to cpu::dropout_uniform (integer hashing, exact scaling by 2^-24).
__global__ void dropout_forward_kernel(float* out, float* mask, const float* in, size_t n, float p,
                                       uint64_t seed, uint64_t counter) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const uint64_t base = splitmix(seed ^ splitmix(counter));
  KESTREL_GRID_STRIDE(i, n) {
    const uint64_t h = splitmix(base + i);
    const float u = static_cast<float>(h >> 40) * 0x1.0p-24f;
    const float m = u < p ? 0.0f : scale;
    mask[i] = m;
    out[i] = in[i] * m;
  }
}

__global__ void dropout_backward_kernel(float* din, const float* dout, const float* mask, size_t n,
                                        bool accumulate) {
  KESTREL_GRID_STRIDE(i, n) store(din + i, dout[i] * mask[i], accumulate);
}

__global__ void activation_forward_kernel(float* out, const float* in, size_t n, Activation a,
                                          float alpha) {
  KESTREL_GRID_STRIDE(i, n) {
    const float x = in[i];
    float y;
    switch (a) {
      case Activation::kReLU: y = x < 0.0f ? 0.0f : x; break;
      case Activation::kLeakyReLU: y = x > 0.0f ? x : alpha * x; break;
      case Activation::kGELU: y = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); break;
      case Activation::kTanh: y = tanhf(x); break;
      default: y = 1.0f / (1.0f + expf(-x)); break;
    }
    out[i] = y;
  }
}

__global__ void activation_backward_kernel(float* din, const float* dout, const float* in,
                                           const float* out, size_t n, Activation a, float alpha,
                                           bool accumulate) {
  KESTREL_GRID_STRIDE(i, n) {
    float g;
    switch (a) {
      case Activation::kReLU: g = out[i] > 0.0f ? dout[i] : 0.0f; break;
      case Activation::kLeakyReLU: g = in[i] > 0.0f ? dout[i] : alpha * dout[i]; break;
      case Activation::kGELU: {
        const float x = in[i];
        const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        g = dout[i] * (cdf + x * pdf);
        break;
      }
      case Activation::kTanh: g = dout[i] * (1.0f - out[i] * out[i]); break;
      default: g = dout[i] * out[i] * (1.0f - out[i]); break;
    }
    store(din + i, g, accumulate);
  }
}

// Copies part[n][c_part*hw] <-> whole[n][c_total*hw] at offset c_offset*hw.
__global__ void concat_kernel(float* dst, const float* src, int n, size_t block, size_t stride,
                              size_t offset, bool to_whole, bool accumulate) {
  const size_t total = static_cast<size_t>(n) * block;
  KESTREL_GRID_STRIDE(i, total) {
    const size_t smp = i / block, j = i % block;
    const size_t whole = smp * stride + offset + j;
    if (to_whole) dst[whole] = src[i];
    else store(dst + i, src[whole], accumulate);
  }
}

// ---------------------------------------------------------------- losses

// One thread per sample, double arithmetic like the CPU reference.
__global__ void softmax_xent_kernel(float* dlogits, double* loss, int* hit, const float* logits,
                                    const int32_t* labels, int n, int k, float smoothing) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float* z = logits + static_cast<size_t>(i) * k;
  int arg = 0;
  float m = z[0];
  for (int j = 1; j < k; ++j)
    if (z[j] > m) { m = z[j]; arg = j; }
  double s = 0.0, zsum = 0.0;
  for (int j = 0; j < k; ++j) {
    s += exp(static_cast<double>(z[j] - m));
    zsum += z[j];
  }
  const double lse = m + log(s);
  const int y = labels[i];
  loss[i] = lse - (1.0 - smoothing) * z[y] - smoothing * (zsum / k);
  hit[i] = arg == y;
  if (dlogits) {
    const float inv_n = 1.0f / static_cast<float>(n);
    const float off = smoothing / static_cast<float>(k), on = 1.0f - smoothing + off;
    float* g = dlogits + static_cast<size_t>(i) * k;
    for (int j = 0; j < k; ++j) {
      const float p = static_cast<float>(exp(static_cast<double>(z[j]) - lse));
      g[j] = (p - (j == y ? on : off)) * inv_n;
    }
  }
}

__global__ void mse_kernel(float* dpred, double* loss, const float* pred, const float* target, int n,
                           int k) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float scale = 2.0f / (static_cast<float>(n) * k);
  double s = 0.0;
  for (int j = 0; j < k; ++j) {
    const size_t idx = static_cast<size_t>(i) * k + j;
    const float diff = pred[idx] - target[idx];
    s += static_cast<double>(diff) * diff;
    if (dpred) dpred[idx] = scale * diff;
  }
  loss[i] = s / k;
}

// Sums the per-sample losses (and hits) in one block: result[0] = loss sum, result[1] = hits.
__global__ void loss_reduce_kernel(double* result, const double* loss, const int* hit, int n) {
  double s = 0.0, h = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    s += loss[i];
    if (hit) h += hit[i];
  }
  s = block_sum(s);
  h = block_sum(h);
  if (threadIdx.x == 0) {
    result[0] = s;
    result[1] = h;
  }
}

// ---------------------------------------------------------------- optimizers

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, float* vmax, size_t n,
                            float b1, float b2, float eps, float wd, float shrink, bool shrink_first,
                            float step_size, float bc2_sqrt) {
  const float one_m_b1 = 1.0f - b1, one_m_b2 = 1.0f - b2;
  KESTREL_GRID_STRIDE(i, n) {
    float wi = w[i];
    if (shrink_first) wi = wi * shrink;
    const float d = g[i] + wd * wi;
    const float mi = m[i] * b1 + one_m_b1 * d;
    float vi = v[i] * b2 + one_m_b2 * (d * d);
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      const float old = vmax[i];
      vi = old < vi ? vi : old;
      vmax[i] = vi;
    }
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    w[i] = wi + (-step_size) * mi / denom;
  }
}

__global__ void sgd_kernel(float* w, const float* g, float* buf, size_t n, float lr, float mom,
                           float keep, float take, float wd, bool nesterov) {
  KESTREL_GRID_STRIDE(i, n) {
    const float d = g[i] + wd * w[i];
    if (!buf) {
      w[i] = w[i] + (-lr) * d;
      continue;
    }
    const float bi = buf[i] * keep + take * d;
    buf[i] = bi;
    w[i] = w[i] + (-lr) * (nesterov ? d + mom * bi : bi);
  }
}

__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, size_t n) {
  KESTREL_GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

// ---------------------------------------------------------------- gathers

template <class T>
__global__ void gather_kernel(T* dst, const T* src, const int32_t* index, size_t total, size_t row) {
  KESTREL_GRID_STRIDE(i, total) dst[i] = src[static_cast<size_t>(index[i / row]) * row + i % row];
}

}  // namespace

// ---------------------------------------------------------------- convolution plans

struct CudaBackend::ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  cudnnMathType_t fwd_math{}, data_math{}, filter_math{};
  size_t workspace = 0;  // bytes, the largest of the three algorithms'
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

namespace {

// Picks from cudnnFind* results (fastest first): a successful algorithm, deterministic if any is
// (the CPU backend is deterministic and resumed runs should replay), and, without TF32, one
// reported in FMA math if any is. As PyTorch does, FP32 without TF32 then runs the chosen
// algorithm in FMA math whatever math type Find reported.
template <class Perf>
const Perf& pick_algorithm(const Perf* perf, int count, bool tf32, const char* what) {
  const Perf* best = nullptr;
  int best_score = -1;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    const int score = (perf[i].determinism == CUDNN_DETERMINISTIC ? 2 : 0) +
                      (tf32 || perf[i].mathType == CUDNN_FMA_MATH ? 1 : 0);
    if (score > best_score) best = &perf[i], best_score = score;  // first = fastest at each score
  }
  if (!best) throw TrainError(std::string("cuDNN found no working ") + what + " algorithm");
  return *best;
}

}  // namespace

CudaBackend::ConvPlan& CudaBackend::conv_plan(const ConvDims& d) {
  const ConvKey key{d.n, d.c_in, d.h, d.w, d.c_out, d.kh, d.kw, d.stride, d.pad, d.groups};
  auto it = conv_plans_.find(key);
  if (it != conv_plans_.end()) return *it->second;
  auto plan = std::make_unique<ConvPlan>();
  ConvPlan& p = *plan;
  KESTREL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  KESTREL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  KESTREL_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  KESTREL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  KESTREL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d.n, d.c_in, d.h, d.w));
  KESTREL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d.n, d.c_out, d.h_out(), d.w_out()));
  KESTREL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d.c_out, d.c_in / d.groups, d.kh, d.kw));
  KESTREL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, d.pad, d.pad, d.stride, d.stride, 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  KESTREL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, d.groups));
  const cudnnMathType_t math = options_.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, math));
  int got = 0;
  {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    KESTREL_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cudnn_, p.x, p.w, p.conv, p.y,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    const auto& best = pick_algorithm(perf, got, options_.tf32, "convolution forward");
    p.fwd = best.algo;
    p.fwd_math = options_.tf32 ? best.mathType : CUDNN_FMA_MATH;
    size_t bytes = 0;
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd_math));
    KESTREL_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn_, p.x, p.w, p.conv, p.y, p.fwd, &bytes));
    p.workspace = std::max({p.workspace, best.memory, bytes});
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, math));
  }
  {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    KESTREL_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
        cudnn_, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    const auto& best = pick_algorithm(perf, got, options_.tf32, "convolution backward-data");
    p.bwd_data = best.algo;
    p.data_math = options_.tf32 ? best.mathType : CUDNN_FMA_MATH;
    size_t bytes = 0;
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.data_math));
    KESTREL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn_, p.w, p.y, p.conv, p.x, p.bwd_data, &bytes));
    p.workspace = std::max({p.workspace, best.memory, bytes});
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, math));
  }
  {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    KESTREL_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
        cudnn_, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
    const auto& best = pick_algorithm(perf, got, options_.tf32, "convolution backward-filter");
    p.bwd_filter = best.algo;
    p.filter_math = options_.tf32 ? best.mathType : CUDNN_FMA_MATH;
    size_t bytes = 0;
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.filter_math));
    KESTREL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn_, p.x, p.y, p.conv, p.w, p.bwd_filter, &bytes));
    p.workspace = std::max({p.workspace, best.memory, bytes});
  }
  scratch(p.workspace);  // grow now, while planning, not inside the first training step
  return *conv_plans_.emplace(key, std::move(plan)).first->second;
}

void* CudaBackend::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    // Stream order keeps this safe: work queued on the old block runs before any later reuse.
    pool_->release(scratch_);
    scratch_ = pool_->allocate(bytes);
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

// ---------------------------------------------------------------- life cycle, memory

CudaBackend::CudaBackend(CudaOptions options) : options_(options) {
  const int count = device_count();
  if (count == 0) throw TrainError("no CUDA device: " + no_device_reason());
  if (options_.device < 0 || options_.device >= count)
    throw TrainError("CUDA device " + std::to_string(options_.device) + " does not exist (" +
                     std::to_string(count) + " found)");
  KESTREL_CUDA_CHECK(cudaSetDevice(options_.device));
  pool_ = std::make_unique<MemoryPool>(cuda_raw_allocator());
  KESTREL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  KESTREL_CUBLAS_CHECK(cublasCreate(&cublas_));
  KESTREL_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  KESTREL_CUBLAS_CHECK(cublasSetMathMode(cublas_, options_.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  KESTREL_CUDNN_CHECK(cudnnCreate(&cudnn_));
  KESTREL_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  KESTREL_CUDA_CHECK(cudaMallocHost(&host_result_, 64));
}

CudaBackend::~CudaBackend() {
  // Errors here are ignored: a destructor must not throw, and the process may be failing already.
  if (stream_) (void)cudaStreamSynchronize(stream_);
  conv_plans_.clear();
  if (pool_) {
    if (scratch_) pool_->release(scratch_);
    if (ones_) pool_->release(ones_);
    if (bf16_) pool_->release(bf16_);
    pool_.reset();
  }
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (stream_) (void)cudaStreamDestroy(stream_);
  if (host_result_) (void)cudaFreeHost(host_result_);
}

std::unique_ptr<Backend> make_cuda_backend(CudaOptions options) {
  return std::make_unique<CudaBackend>(options);
}

void CudaBackend::synchronize() { KESTREL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

float* CudaBackend::alloc(size_t n) { return static_cast<float*>(pool_->allocate(n * sizeof(float))); }
void CudaBackend::free(float* p) { pool_->release(p); }

void CudaBackend::upload(float* dst, const float* host, size_t n) {
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  // The caller may reuse `host` at once (it may be pinned, when the copy is truly asynchronous).
  synchronize();
}

void CudaBackend::download(float* host, const float* src, size_t n) {
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

void CudaBackend::fill(float* dst, float value, size_t n) {
  if (n == 0) return;
  if (value == 0.0f) {
    KESTREL_CUDA_CHECK(cudaMemsetAsync(dst, 0, n * sizeof(float), stream_));
    return;
  }
  fill_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dst, value, n);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::copy(float* dst, const float* src, size_t n) {
  if (dst == src || n == 0) return;
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::add_into(float* dst, const float* src, size_t n, bool accumulate) {
  if (!accumulate) return copy(dst, src, n);
  if (n == 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, stream_>>>(dst, src, n);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- dense (cuBLAS)

namespace {

// Row-major C[m][n] = alpha op(A) op(B) + beta C, as cpu::gemm: cuBLAS is column-major, so it
// computes C^T = op(B)^T op(A)^T, i.e. the operands swap places and keep their flags.
void gemm_rm(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, float alpha, const float* a,
             int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  KESTREL_CUBLAS_CHECK(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

}  // namespace

// Every Linear GEMM multiplies whole contiguous matrices, so row strides equal row lengths:
// lda = op(A) is m x k -> k (or m when transposed), likewise for B and C.
void CudaBackend::linear_gemm(bool ta, bool tb, int m, int n, int k, const float* a, size_t a_size,
                              const float* b, size_t b_size, float beta, float* c) {
  const int lda = ta ? m : k, ldb = tb ? k : n;
  if (!options_.bf16) {
    gemm_rm(cublas_, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, n);
    return;
  }
  const size_t bytes = (a_size + b_size) * sizeof(__nv_bfloat16) + 256;
  if (bytes > bf16_bytes_) {
    pool_->release(bf16_);
    bf16_ = pool_->allocate(bytes);
    bf16_bytes_ = bytes;
  }
  auto* a16 = static_cast<__nv_bfloat16*>(bf16_);
  auto* b16 = a16 + (a_size + 127) / 128 * 128;  // keep b16 256-byte aligned
  to_bf16_kernel<<<grid_for(a_size), kThreads, 0, stream_>>>(a16, a, a_size);
  KESTREL_CUDA_CHECK_LAUNCH();
  to_bf16_kernel<<<grid_for(b_size), kThreads, 0, stream_>>>(b16, b, b_size);
  KESTREL_CUDA_CHECK_LAUNCH();
  const float alpha = 1.0f;
  KESTREL_CUBLAS_CHECK(cublasGemmEx(cublas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
                                    &alpha, b16, CUDA_R_16BF, ldb, a16, CUDA_R_16BF, lda, &beta, c, CUDA_R_32F, n,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::linear_forward(float* out, const float* in, const float* w, const float* b, int n,
                                 int in_f, int out_f, bool relu) {
  linear_gemm(false, true, n, out_f, in_f, in, size_t(n) * in_f, w, size_t(out_f) * in_f, 0.0f, out);
  if (b || relu) {
    const size_t total = static_cast<size_t>(n) * out_f;
    bias_relu_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, b, total, 1, out_f, relu);
    KESTREL_CUDA_CHECK_LAUNCH();
  }
}

void CudaBackend::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                                  const float* w, int n, int in_f, int out_f, bool accumulate) {
  if (dw) linear_gemm(true, false, out_f, in_f, n, dout, size_t(n) * out_f, in, size_t(n) * in_f, 0.0f, dw);
  if (db) {
    if (ones_n_ < static_cast<size_t>(n)) {
      if (ones_) pool_->release(ones_);
      ones_n_ = std::max<size_t>(n, 1024);
      ones_ = static_cast<float*>(pool_->allocate(ones_n_ * sizeof(float)));
      fill(ones_, 1.0f, ones_n_);
    }
    // db[out_f] = dout^T (n x out_f)^T * ones[n]
    gemm_rm(cublas_, true, false, out_f, 1, n, 1.0f, dout, out_f, ones_, 1, 0.0f, db, 1);
  }
  if (din)
    linear_gemm(false, false, n, in_f, out_f, dout, size_t(n) * out_f, w, size_t(out_f) * in_f,
                accumulate ? 1.0f : 0.0f, din);
}

// ---------------------------------------------------------------- convolution (cuDNN)

size_t CudaBackend::conv2d_workspace(const ConvDims&) const { return 0; }

void CudaBackend::conv2d_forward(float* out, const float* in, const float* w, const float* b,
                                 float* /*workspace*/, const ConvDims& d, bool relu) {
  ConvPlan& p = conv_plan(d);
  const float one = 1.0f, zero = 0.0f;
  KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd_math));
  KESTREL_CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &one, p.x, in, p.w, w, p.conv, p.fwd,
                                              scratch(p.workspace), p.workspace, &zero, p.y, out));
  if (b || relu) {
    const int hw = d.h_out() * d.w_out();
    const size_t total = static_cast<size_t>(d.n) * d.c_out * hw;
    bias_relu_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, b, total, hw, d.c_out, relu);
    KESTREL_CUDA_CHECK_LAUNCH();
  }
}

void CudaBackend::conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                                  const float* w, float* /*workspace*/, const ConvDims& d,
                                  bool accumulate) {
  ConvPlan& p = conv_plan(d);
  const float one = 1.0f, zero = 0.0f, acc = accumulate ? 1.0f : 0.0f;
  void* ws = scratch(p.workspace);
  if (dw) {
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.filter_math));
    KESTREL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, &one, p.x, in, p.y, dout, p.conv,
                                                       p.bwd_filter, ws, p.workspace, &zero, p.w, dw));
  }
  if (db) {
    channel_sum_kernel<<<d.c_out, 512, 0, stream_>>>(db, dout, d.n, d.c_out, d.h_out() * d.w_out());
    KESTREL_CUDA_CHECK_LAUNCH();
  }
  if (din) {
    KESTREL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.data_math));
    KESTREL_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &one, p.w, w, p.y, dout, p.conv,
                                                     p.bwd_data, ws, p.workspace, &acc, p.x, din));
  }
}

// ---------------------------------------------------------------- pooling

void CudaBackend::maxpool_forward(float* out, const float* in, const PoolDims& d) {
  const int ho = d.h_out(), wo = d.w_out();
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  if (total == 0) return;
  maxpool_forward_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, in, d, ho, wo);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::maxpool_backward(float* din, const float* dout, const float* in, const float* out,
                                   const PoolDims& d, bool accumulate, bool relu_input) {
  const int ho = d.h_out(), wo = d.w_out();
  if (!accumulate) fill(din, 0.0f, static_cast<size_t>(d.n) * d.c * d.h * d.w);
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  if (total == 0) return;
  maxpool_backward_kernel<<<grid_for(total), kThreads, 0, stream_>>>(din, dout, in, out, d, ho, wo,
                                                                     relu_input);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::avgpool_forward(float* out, const float* in, const PoolDims& d) {
  const int ho = d.h_out(), wo = d.w_out();
  const size_t total = static_cast<size_t>(d.n) * d.c * ho * wo;
  if (total == 0) return;
  avgpool_forward_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, in, d, ho, wo);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::avgpool_backward(float* din, const float* dout, const PoolDims& d, bool accumulate) {
  const size_t total = static_cast<size_t>(d.n) * d.c * d.h * d.w;
  if (total == 0) return;
  avgpool_backward_kernel<<<grid_for(total), kThreads, 0, stream_>>>(din, dout, d, d.h_out(), d.w_out(),
                                                                     accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::global_avgpool_forward(float* out, const float* in, int n, int c, int hw) {
  const int planes = n * c;
  if (planes == 0) return;
  const unsigned blocks = static_cast<unsigned>((static_cast<size_t>(planes) * 32 + kThreads - 1) / kThreads);
  global_avgpool_forward_kernel<<<blocks, kThreads, 0, stream_>>>(out, in, planes, hw);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::global_avgpool_backward(float* din, const float* dout, int n, int c, int hw,
                                          bool accumulate) {
  const size_t total = static_cast<size_t>(n) * c * hw;
  if (total == 0) return;
  global_avgpool_backward_kernel<<<grid_for(total), kThreads, 0, stream_>>>(din, dout, total, hw, accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- batch norm

void CudaBackend::batchnorm_forward_train(float* out, float* save_mean, float* save_invstd,
                                          float* running_mean, float* running_var, const float* in,
                                          const float* gamma, const float* beta, int n, int c, int hw,
                                          float eps, float momentum) {
  if (c == 0) return;
  bn_forward_train_kernel<<<c, 512, 0, stream_>>>(out, save_mean, save_invstd, running_mean, running_var,
                                                  in, gamma, beta, n, c, hw, eps, momentum);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::batchnorm_forward_eval(float* out, const float* in, const float* gamma,
                                         const float* beta, const float* running_mean,
                                         const float* running_var, int n, int c, int hw, float eps) {
  const size_t total = static_cast<size_t>(n) * c * hw;
  if (total == 0) return;
  bn_forward_eval_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, in, gamma, beta, running_mean,
                                                                    running_var, total, c, hw, eps);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::batchnorm_backward_train(float* din, float* dgamma, float* dbeta, const float* dout,
                                           const float* in, const float* gamma, const float* save_mean,
                                           const float* save_invstd, int n, int c, int hw,
                                           bool accumulate) {
  if (c == 0) return;
  bn_backward_train_kernel<<<c, 512, 0, stream_>>>(din, dgamma, dbeta, dout, in, gamma, save_mean,
                                                   save_invstd, n, c, hw, accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                                          const float* in, const float* gamma,
                                          const float* running_mean, const float* running_var, int n,
                                          int c, int hw, float eps, bool accumulate) {
  if (c == 0) return;
  bn_backward_eval_kernel<<<c, 512, 0, stream_>>>(din, dgamma, dbeta, dout, in, gamma, running_mean,
                                                  running_var, n, c, hw, eps, accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- dropout, pointwise, concat

void CudaBackend::dropout_forward(float* out, float* mask, const float* in, size_t n, float p,
                                  uint64_t seed, uint64_t counter) {
  if (n == 0) return;
  dropout_forward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, mask, in, n, p, seed, counter);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::dropout_backward(float* din, const float* dout, const float* mask, size_t n,
                                   bool accumulate) {
  if (n == 0) return;
  dropout_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, dout, mask, n, accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::activation_forward(float* out, const float* in, size_t n, Activation a, float alpha) {
  if (n == 0) return;
  activation_forward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(out, in, n, a, alpha);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::activation_backward(float* din, const float* dout, const float* in, const float* out,
                                      size_t n, Activation a, float alpha, bool accumulate) {
  if (n == 0) return;
  activation_backward_kernel<<<grid_for(n), kThreads, 0, stream_>>>(din, dout, in, out, n, a, alpha,
                                                                    accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::concat_forward_part(float* out, const float* in, int n, int c_part, int c_total,
                                      int c_offset, int hw) {
  const size_t block = static_cast<size_t>(c_part) * hw, total = block * n;
  if (total == 0) return;
  concat_kernel<<<grid_for(total), kThreads, 0, stream_>>>(out, in, n, block, static_cast<size_t>(c_total) * hw,
                                                           static_cast<size_t>(c_offset) * hw, true, false);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::concat_backward_part(float* din, const float* dout, int n, int c_part, int c_total,
                                       int c_offset, int hw, bool accumulate) {
  const size_t block = static_cast<size_t>(c_part) * hw, total = block * n;
  if (total == 0) return;
  concat_kernel<<<grid_for(total), kThreads, 0, stream_>>>(din, dout, n, block, static_cast<size_t>(c_total) * hw,
                                                           static_cast<size_t>(c_offset) * hw, false, accumulate);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- losses

void CudaBackend::softmax_xent(float* dlogits, double* loss_sum, int64_t* correct, const float* logits,
                               const int32_t* labels, int n, int k, float smoothing) {
  if (n == 0) {
    if (loss_sum) *loss_sum = 0.0;
    if (correct) *correct = 0;
    return;
  }
  // Scratch: result[2] doubles, then n per-sample losses, then n hit flags.
  char* s = static_cast<char*>(scratch(16 + static_cast<size_t>(n) * (sizeof(double) + sizeof(int))));
  double* result = reinterpret_cast<double*>(s);
  double* loss = result + 2;
  int* hit = reinterpret_cast<int*>(loss + n);
  softmax_xent_kernel<<<(n + 127) / 128, 128, 0, stream_>>>(dlogits, loss, hit, logits, labels, n, k, smoothing);
  KESTREL_CUDA_CHECK_LAUNCH();
  loss_reduce_kernel<<<1, 512, 0, stream_>>>(result, loss, hit, n);
  KESTREL_CUDA_CHECK_LAUNCH();
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(host_result_, result, 2 * sizeof(double), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  const double* h = static_cast<const double*>(host_result_);
  if (loss_sum) *loss_sum = h[0];
  if (correct) *correct = static_cast<int64_t>(h[1]);
}

void CudaBackend::mse(float* dpred, double* loss_sum, const float* pred, const float* target, int n,
                      int k) {
  if (n == 0) {
    if (loss_sum) *loss_sum = 0.0;
    return;
  }
  double* result = static_cast<double*>(scratch(16 + static_cast<size_t>(n) * sizeof(double)));
  double* loss = result + 2;
  mse_kernel<<<(n + 127) / 128, 128, 0, stream_>>>(dpred, loss, pred, target, n, k);
  KESTREL_CUDA_CHECK_LAUNCH();
  loss_reduce_kernel<<<1, 512, 0, stream_>>>(result, loss, nullptr, n);
  KESTREL_CUDA_CHECK_LAUNCH();
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(host_result_, result, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  if (loss_sum) *loss_sum = static_cast<const double*>(host_result_)[0];
}

int32_t* CudaBackend::alloc_labels(size_t n) {
  return static_cast<int32_t*>(pool_->allocate(n * sizeof(int32_t)));
}
void CudaBackend::free_labels(int32_t* p) { pool_->release(p); }
void CudaBackend::upload_labels(int32_t* dst, const int32_t* host, size_t n) {
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  synchronize();
}

// ---------------------------------------------------------------- optimizers

void CudaBackend::adam_step(float* w, const float* g, float* m, float* v, float* vmax, size_t n,
                            const AdamStep& s) {
  if (n == 0) return;
  // Scalars as the CPU Optimizer computes them: in double, rounded once to float.
  const double t = static_cast<double>(s.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(s.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(s.beta2), t);
  const float step_size = static_cast<float>(static_cast<double>(s.lr) / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float shrink = s.decoupled ? static_cast<float>(1.0 - static_cast<double>(s.lr) * s.weight_decay) : 1.0f;
  const float wd = s.decoupled ? 0.0f : s.weight_decay;
  const bool shrink_first = s.decoupled && s.weight_decay != 0.0f;
  adam_kernel<<<grid_for(n), kThreads, 0, stream_>>>(w, g, m, v, vmax, n, s.beta1, s.beta2, s.eps, wd,
                                                     shrink, shrink_first, step_size, bc2_sqrt);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::sgd_step(float* w, const float* g, float* buf, size_t n, const SgdStep& s) {
  if (n == 0) return;
  const bool first = s.step <= 1;
  sgd_kernel<<<grid_for(n), kThreads, 0, stream_>>>(w, g, s.momentum != 0.0f ? buf : nullptr, n, s.lr,
                                                    s.momentum, first ? 0.0f : s.momentum,
                                                    first ? 1.0f : 1.0f - s.dampening, s.weight_decay,
                                                    s.nesterov);
  KESTREL_CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------- gathers

void CudaBackend::gather_rows(float* dst, const float* src, const int32_t* index, int n, size_t row) {
  const size_t total = static_cast<size_t>(n) * row;
  if (total == 0) return;
  gather_kernel<float><<<grid_for(total), kThreads, 0, stream_>>>(dst, src, index, total, row);
  KESTREL_CUDA_CHECK_LAUNCH();
}

void CudaBackend::gather_labels(int32_t* dst, const int32_t* src, const int32_t* index, int n) {
  if (n <= 0) return;
  gather_kernel<int32_t><<<grid_for(n), kThreads, 0, stream_>>>(dst, src, index, static_cast<size_t>(n), 1);
  KESTREL_CUDA_CHECK_LAUNCH();
}

}  // namespace kestrel::trainer::cuda
