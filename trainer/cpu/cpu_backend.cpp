// CPU kernels of the trainer: im2col + GEMM convolutions, pooling, batch norm, dropout, activations,
// losses. Loops are OpenMP-parallel over independent rows; reductions run in a fixed order.
#include "trainer/cpu/cpu_backend.hpp"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "trainer/cpu/gemm.hpp"

namespace kestrel::trainer::cpu {
namespace {

// Below this many elements a pointwise loop is not worth waking a second thread for.
constexpr size_t kParallelMin = 1 << 15;

inline void store(float* dst, float v, bool accumulate) {
  if (accumulate) *dst += v;
  else *dst = v;
}

// Unfolds one sample's group of channels into cols[(ci*kh+ky)*kw+kx][oy*w_out+ox] (zero padding).
void im2col(float* cols, const float* in, int c, int h, int w, int kh, int kw, int stride, int pad,
            int h_out, int w_out) {
  for (int ci = 0; ci < c; ++ci) {
    const float* plane = in + static_cast<size_t>(ci) * h * w;
    for (int ky = 0; ky < kh; ++ky) {
      for (int kx = 0; kx < kw; ++kx) {
        float* row = cols + ((static_cast<size_t>(ci) * kh + ky) * kw + kx) * h_out * w_out;
        for (int oy = 0; oy < h_out; ++oy) {
          const int iy = oy * stride - pad + ky;
          float* dst = row + static_cast<size_t>(oy) * w_out;
          if (iy < 0 || iy >= h) {
            std::fill(dst, dst + w_out, 0.0f);
            continue;
          }
          const float* src = plane + static_cast<size_t>(iy) * w;
          if (stride == 1) {
            // Valid ox range: 0 <= ox - pad + kx < w.
            const int lo = std::max(0, pad - kx), hi = std::min(w_out, w + pad - kx);
            for (int ox = 0; ox < lo; ++ox) dst[ox] = 0.0f;
            if (hi > lo) std::memcpy(dst + lo, src + lo - pad + kx, sizeof(float) * (hi - lo));
            for (int ox = std::max(hi, lo); ox < w_out; ++ox) dst[ox] = 0.0f;
          } else {
            for (int ox = 0; ox < w_out; ++ox) {
              const int ix = ox * stride - pad + kx;
              dst[ox] = (ix >= 0 && ix < w) ? src[ix] : 0.0f;
            }
          }
        }
      }
    }
  }
}

// Adjoint of im2col: adds cols back into the sample's input gradient.
void col2im_add(float* in, const float* cols, int c, int h, int w, int kh, int kw, int stride,
                int pad, int h_out, int w_out) {
  for (int ci = 0; ci < c; ++ci) {
    float* plane = in + static_cast<size_t>(ci) * h * w;
    for (int ky = 0; ky < kh; ++ky) {
      for (int kx = 0; kx < kw; ++kx) {
        const float* row = cols + ((static_cast<size_t>(ci) * kh + ky) * kw + kx) * h_out * w_out;
        for (int oy = 0; oy < h_out; ++oy) {
          const int iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h) continue;
          const float* src = row + static_cast<size_t>(oy) * w_out;
          float* dst = plane + static_cast<size_t>(iy) * w;
          if (stride == 1) {
            const int lo = std::max(0, pad - kx), hi = std::min(w_out, w + pad - kx);
            float* d0 = dst - pad + kx;
#pragma omp simd
            for (int ox = lo; ox < hi; ++ox) d0[ox] += src[ox];
          } else {
            for (int ox = 0; ox < w_out; ++ox) {
              const int ix = ox * stride - pad + kx;
              if (ix >= 0 && ix < w) dst[ix] += src[ox];
            }
          }
        }
      }
    }
  }
}

// NaN passes through (as in PyTorch): a diverging run must reach the loss check.
inline void relu_inplace(float* x, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// max that lets NaN through (PyTorch's pooling does), so a diverging run reaches the loss check.
inline float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

bool is_pointwise_conv(const ConvDims& d) {
  return d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0;
}

uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

float dropout_uniform(uint64_t seed, uint64_t counter, uint64_t i) {
  const uint64_t h = splitmix(splitmix(seed ^ splitmix(counter)) + i);
  return static_cast<float>(h >> 40) * 0x1.0p-24f;
}

CpuBackend::CpuBackend(int threads) { set_threads(threads); }

void CpuBackend::set_threads(int threads) {
  threads_ = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(threads_);
  Eigen::setNbThreads(threads_);
}

float* CpuBackend::alloc(size_t n) {
  const size_t bytes = ((std::max<size_t>(n, 1) * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}
void CpuBackend::free(float* p) { std::free(p); }
void CpuBackend::upload(float* dst, const float* host, size_t n) {
  if (dst != host) std::memcpy(dst, host, n * sizeof(float));
}
void CpuBackend::download(float* host, const float* src, size_t n) {
  if (host != src) std::memcpy(host, src, n * sizeof(float));
}
void CpuBackend::fill(float* dst, float value, size_t n) { std::fill(dst, dst + n, value); }
void CpuBackend::copy(float* dst, const float* src, size_t n) {
  if (dst != src) std::memcpy(dst, src, n * sizeof(float));
}
void CpuBackend::add_into(float* dst, const float* src, size_t n, bool accumulate) {
  if (!accumulate) return copy(dst, src, n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

// ---------------------------------------------------------------- dense

void CpuBackend::linear_forward(float* out, const float* in, const float* w, const float* b, int n,
                                int in_f, int out_f, bool relu) {
  float beta = 0.0f;
  if (b) {
    for (int i = 0; i < n; ++i) std::memcpy(out + static_cast<size_t>(i) * out_f, b, sizeof(float) * out_f);
    beta = 1.0f;
  }
  gemm(false, true, n, out_f, in_f, 1.0f, in, in_f, w, in_f, beta, out, out_f);
  if (relu) relu_inplace(out, static_cast<size_t>(n) * out_f);
}

void CpuBackend::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                                 const float* w, int n, int in_f, int out_f, bool accumulate) {
  if (dw) gemm(true, false, out_f, in_f, n, 1.0f, dout, out_f, in, in_f, 0.0f, dw, in_f);
  if (db) {
    Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> g(dout, n, out_f);
    Eigen::Map<Eigen::RowVectorXf> bias(db, out_f);
    bias = g.colwise().sum();
  }
  if (din) gemm(false, false, n, in_f, out_f, 1.0f, dout, out_f, w, in_f, accumulate ? 1.0f : 0.0f, din, in_f);
}

// ---------------------------------------------------------------- convolution

size_t CpuBackend::conv2d_workspace(const ConvDims& d) const {
  const size_t cols = static_cast<size_t>(d.c_in / d.groups) * d.kh * d.kw * d.h_out() * d.w_out();
  const size_t wsize = static_cast<size_t>(d.c_out) * (d.c_in / d.groups) * d.kh * d.kw;
  // Per thread: one cols buffer, one weight-gradient partial and one bias-gradient partial.
  return static_cast<size_t>(threads_) * (cols + wsize + d.c_out + 16);
}

void CpuBackend::conv2d_forward(float* out, const float* in, const float* w, const float* b,
                                float* workspace, const ConvDims& d, bool relu) {
  const int ho = d.h_out(), wo = d.w_out(), hw_out = ho * wo;
  const int cg = d.c_in / d.groups, og = d.c_out / d.groups;
  const int kdim = cg * d.kh * d.kw;
  const size_t cols_size = static_cast<size_t>(kdim) * hw_out;
  const size_t per_thread = cols_size + static_cast<size_t>(d.c_out) * kdim + d.c_out + 16;
  const size_t in_sample = static_cast<size_t>(d.c_in) * d.h * d.w;
  const size_t out_sample = static_cast<size_t>(d.c_out) * hw_out;
  const bool pointwise = is_pointwise_conv(d);
#pragma omp parallel num_threads(threads_)
  {
    float* cols = workspace + per_thread * omp_get_thread_num();
#pragma omp for schedule(static)
    for (int i = 0; i < d.n; ++i) {
      float* y = out + i * out_sample;
      for (int g = 0; g < d.groups; ++g) {
        const float* x = in + i * in_sample + static_cast<size_t>(g) * cg * d.h * d.w;
        const float* src = x;
        if (!pointwise) {
          im2col(cols, x, cg, d.h, d.w, d.kh, d.kw, d.stride, d.pad, ho, wo);
          src = cols;
        }
        float* yg = y + static_cast<size_t>(g) * og * hw_out;
        float beta = 0.0f;
        if (b) {
          for (int o = 0; o < og; ++o) std::fill(yg + static_cast<size_t>(o) * hw_out, yg + static_cast<size_t>(o + 1) * hw_out, b[g * og + o]);
          beta = 1.0f;
        }
        gemm(false, false, og, hw_out, kdim, 1.0f, w + static_cast<size_t>(g) * og * kdim, kdim, src,
             hw_out, beta, yg, hw_out);
      }
      if (relu) relu_inplace(y, out_sample);
    }
  }
}

void CpuBackend::conv2d_backward(float* din, float* dw, float* db, const float* dout, const float* in,
                                 const float* w, float* workspace, const ConvDims& d, bool accumulate) {
  const int ho = d.h_out(), wo = d.w_out(), hw_out = ho * wo;
  const int cg = d.c_in / d.groups, og = d.c_out / d.groups;
  const int kdim = cg * d.kh * d.kw;
  const size_t wsize = static_cast<size_t>(d.c_out) * kdim;
  const size_t cols_size = static_cast<size_t>(kdim) * hw_out;
  const size_t per_thread = cols_size + wsize + d.c_out + 16;
  const size_t in_sample = static_cast<size_t>(d.c_in) * d.h * d.w;
  const size_t out_sample = static_cast<size_t>(d.c_out) * hw_out;
  const bool pointwise = is_pointwise_conv(d);
  const int nthreads = threads_;
  int used_threads = 1;
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
#pragma omp single
    used_threads = omp_get_num_threads();
    float* cols = workspace + per_thread * tid;
    float* dw_part = cols + cols_size;
    float* db_part = dw_part + wsize;
    if (dw) std::fill(dw_part, dw_part + wsize, 0.0f);
    if (db) std::fill(db_part, db_part + d.c_out, 0.0f);
#pragma omp for schedule(static)
    for (int i = 0; i < d.n; ++i) {
      const float* dy = dout + i * out_sample;
      if (db) {
        for (int o = 0; o < d.c_out; ++o) {
          const float* r = dy + static_cast<size_t>(o) * hw_out;
          float s = 0.0f;
          for (int j = 0; j < hw_out; ++j) s += r[j];
          db_part[o] += s;
        }
      }
      float* dx = din ? din + i * in_sample : nullptr;
      if (dx && !accumulate && !pointwise) std::fill(dx, dx + in_sample, 0.0f);
      for (int g = 0; g < d.groups; ++g) {
        const float* dyg = dy + static_cast<size_t>(g) * og * hw_out;
        const float* x = in + i * in_sample + static_cast<size_t>(g) * cg * d.h * d.w;
        if (dw) {
          const float* src = x;
          if (!pointwise) {
            im2col(cols, x, cg, d.h, d.w, d.kh, d.kw, d.stride, d.pad, ho, wo);
            src = cols;
          }
          gemm(false, true, og, kdim, hw_out, 1.0f, dyg, hw_out, src, hw_out, 1.0f,
               dw_part + static_cast<size_t>(g) * og * kdim, kdim);
        }
        if (dx) {
          const float* wg = w + static_cast<size_t>(g) * og * kdim;
          float* dxg = dx + static_cast<size_t>(g) * cg * d.h * d.w;
          if (pointwise) {
            gemm(true, false, kdim, hw_out, og, 1.0f, wg, kdim, dyg, hw_out, accumulate ? 1.0f : 0.0f,
                 dxg, hw_out);
          } else {
            gemm(true, false, kdim, hw_out, og, 1.0f, wg, kdim, dyg, hw_out, 0.0f, cols, hw_out);
            col2im_add(dxg, cols, cg, d.h, d.w, d.kh, d.kw, d.stride, d.pad, ho, wo);
          }
        }
      }
    }
  }
  // Sum the per-thread partials in thread order: the result does not depend on scheduling.
  if (dw) {
    std::memcpy(dw, workspace + cols_size, wsize * sizeof(float));
    for (int t = 1; t < used_threads; ++t) {
      const float* p = workspace + per_thread * t + cols_size;
      for (size_t j = 0; j < wsize; ++j) dw[j] += p[j];
    }
  }
  if (db) {
    std::memcpy(db, workspace + cols_size + wsize, d.c_out * sizeof(float));
    for (int t = 1; t < used_threads; ++t) {
      const float* p = workspace + per_thread * t + cols_size + wsize;
      for (int j = 0; j < d.c_out; ++j) db[j] += p[j];
    }
  }
}

// ---------------------------------------------------------------- pooling

void CpuBackend::maxpool_forward(float* out, const float* in, const PoolDims& d) {
  const int ho = d.h_out(), wo = d.w_out();
  const int planes = d.n * d.c;
  if (d.k == 2 && d.stride == 2 && d.pad == 0 && d.w <= 4096) {
    // The common 2x2 window: a vertical max of two rows, then a horizontal max of pairs, both
    // loops the compiler vectorises (the generic loop cost as much as the convolutions).
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int p = 0; p < planes; ++p) {
      float t[4096];
      const float* x = in + static_cast<size_t>(p) * d.h * d.w;
      float* y = out + static_cast<size_t>(p) * ho * wo;
      for (int oy = 0; oy < ho; ++oy) {
        const float* r0 = x + static_cast<size_t>(2 * oy) * d.w;
        const float* r1 = r0 + d.w;
        float* yr = y + static_cast<size_t>(oy) * wo;
#pragma omp simd
        for (int j = 0; j < 2 * wo; ++j) t[j] = nan_max(r0[j], r1[j]);
#pragma omp simd
        for (int ox = 0; ox < wo; ++ox) yr[ox] = nan_max(t[2 * ox], t[2 * ox + 1]);
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int p = 0; p < planes; ++p) {
    const float* x = in + static_cast<size_t>(p) * d.h * d.w;
    float* y = out + static_cast<size_t>(p) * ho * wo;
    for (int oy = 0; oy < ho; ++oy) {
      const int y0 = std::max(0, oy * d.stride - d.pad), y1 = std::min(d.h, oy * d.stride - d.pad + d.k);
      for (int ox = 0; ox < wo; ++ox) {
        const int x0 = std::max(0, ox * d.stride - d.pad), x1 = std::min(d.w, ox * d.stride - d.pad + d.k);
        float m = -std::numeric_limits<float>::infinity();
        for (int iy = y0; iy < y1; ++iy)
          for (int ix = x0; ix < x1; ++ix) {
            const float v = x[iy * d.w + ix];
            if (v > m || v != v) m = v;  // NaN propagates, as in PyTorch
          }
        y[oy * wo + ox] = m;
      }
    }
  }
}

void CpuBackend::maxpool_backward(float* din, const float* dout, const float* in, const float* out,
                                  const PoolDims& d, bool accumulate, bool relu_input) {
  const int ho = d.h_out(), wo = d.w_out();
  const int planes = d.n * d.c;
  if (d.k == 2 && d.stride == 2 && d.pad == 0 && !accumulate) {
    // Every input position is written exactly once (no zero-fill pass, no read-modify-write).
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (int p = 0; p < planes; ++p) {
      const float* x = in + static_cast<size_t>(p) * d.h * d.w;
      const float* y = out + static_cast<size_t>(p) * ho * wo;
      const float* g = dout + static_cast<size_t>(p) * ho * wo;
      float* dx = din + static_cast<size_t>(p) * d.h * d.w;
      for (int oy = 0; oy < ho; ++oy) {
        const float* a = x + static_cast<size_t>(2 * oy) * d.w;
        const float* b = a + d.w;
        float* da = dx + static_cast<size_t>(2 * oy) * d.w;
        float* db = da + d.w;
        const float* yr = y + static_cast<size_t>(oy) * wo;
        const float* gr = g + static_cast<size_t>(oy) * wo;
#pragma omp simd
        for (int ox = 0; ox < wo; ++ox) {
          // The first maximum in scan order takes the gradient (as in the generic path).
          const float m = yr[ox], gv = relu_input && !(yr[ox] > 0.0f) ? 0.0f : gr[ox];
          const bool e0 = a[2 * ox] == m;
          const bool e1 = !e0 && a[2 * ox + 1] == m;
          const bool e2 = !e0 && !e1 && b[2 * ox] == m;
          const bool e3 = !e0 && !e1 && !e2;
          da[2 * ox] = e0 ? gv : 0.0f;
          da[2 * ox + 1] = e1 ? gv : 0.0f;
          db[2 * ox] = e2 ? gv : 0.0f;
          db[2 * ox + 1] = e3 ? gv : 0.0f;
        }
        for (int ix = 2 * wo; ix < d.w; ++ix) da[ix] = db[ix] = 0.0f;  // odd width: never selected
      }
      for (int iy = 2 * ho; iy < d.h; ++iy) std::memset(dx + static_cast<size_t>(iy) * d.w, 0, sizeof(float) * d.w);
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int p = 0; p < planes; ++p) {
    const float* x = in + static_cast<size_t>(p) * d.h * d.w;
    const float* y = out + static_cast<size_t>(p) * ho * wo;
    const float* g = dout + static_cast<size_t>(p) * ho * wo;
    float* dx = din + static_cast<size_t>(p) * d.h * d.w;
    if (!accumulate) std::fill(dx, dx + d.h * d.w, 0.0f);
    for (int oy = 0; oy < ho; ++oy) {
      const int y0 = std::max(0, oy * d.stride - d.pad), y1 = std::min(d.h, oy * d.stride - d.pad + d.k);
      for (int ox = 0; ox < wo; ++ox) {
        const int x0 = std::max(0, ox * d.stride - d.pad), x1 = std::min(d.w, ox * d.stride - d.pad + d.k);
        // The gradient goes to the first maximum in scan order, as PyTorch's kernel does.
        const float m = y[oy * wo + ox];
        if (relu_input && !(m > 0.0f)) continue;
        bool done = false;
        for (int iy = y0; iy < y1 && !done; ++iy)
          for (int ix = x0; ix < x1; ++ix)
            if (x[iy * d.w + ix] == m) {
              dx[iy * d.w + ix] += g[oy * wo + ox];
              done = true;
              break;
            }
      }
    }
  }
}

void CpuBackend::avgpool_forward(float* out, const float* in, const PoolDims& d) {
  const int ho = d.h_out(), wo = d.w_out();
  const int planes = d.n * d.c;
  const float scale = 1.0f / static_cast<float>(d.k * d.k);
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int p = 0; p < planes; ++p) {
    const float* x = in + static_cast<size_t>(p) * d.h * d.w;
    float* y = out + static_cast<size_t>(p) * ho * wo;
    for (int oy = 0; oy < ho; ++oy) {
      const int y0 = std::max(0, oy * d.stride - d.pad), y1 = std::min(d.h, oy * d.stride - d.pad + d.k);
      for (int ox = 0; ox < wo; ++ox) {
        const int x0 = std::max(0, ox * d.stride - d.pad), x1 = std::min(d.w, ox * d.stride - d.pad + d.k);
        float s = 0.0f;
        for (int iy = y0; iy < y1; ++iy)
          for (int ix = x0; ix < x1; ++ix) s += x[iy * d.w + ix];
        y[oy * wo + ox] = s * scale;
      }
    }
  }
}

void CpuBackend::avgpool_backward(float* din, const float* dout, const PoolDims& d, bool accumulate) {
  const int ho = d.h_out(), wo = d.w_out();
  const int planes = d.n * d.c;
  const float scale = 1.0f / static_cast<float>(d.k * d.k);
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int p = 0; p < planes; ++p) {
    const float* g = dout + static_cast<size_t>(p) * ho * wo;
    float* dx = din + static_cast<size_t>(p) * d.h * d.w;
    if (!accumulate) std::fill(dx, dx + d.h * d.w, 0.0f);
    for (int oy = 0; oy < ho; ++oy) {
      const int y0 = std::max(0, oy * d.stride - d.pad), y1 = std::min(d.h, oy * d.stride - d.pad + d.k);
      for (int ox = 0; ox < wo; ++ox) {
        const int x0 = std::max(0, ox * d.stride - d.pad), x1 = std::min(d.w, ox * d.stride - d.pad + d.k);
        const float v = g[oy * wo + ox] * scale;
        for (int iy = y0; iy < y1; ++iy)
          for (int ix = x0; ix < x1; ++ix) dx[iy * d.w + ix] += v;
      }
    }
  }
}

void CpuBackend::global_avgpool_forward(float* out, const float* in, int n, int c, int hw) {
  const int planes = n * c;
#pragma omp parallel for schedule(static) num_threads(threads_) if (static_cast<size_t>(planes) * hw > kParallelMin)
  for (int p = 0; p < planes; ++p) {
    const float* x = in + static_cast<size_t>(p) * hw;
    float s = 0.0f;
    for (int j = 0; j < hw; ++j) s += x[j];
    out[p] = s / static_cast<float>(hw);
  }
}

void CpuBackend::global_avgpool_backward(float* din, const float* dout, int n, int c, int hw,
                                         bool accumulate) {
  const int planes = n * c;
#pragma omp parallel for schedule(static) num_threads(threads_) if (static_cast<size_t>(planes) * hw > kParallelMin)
  for (int p = 0; p < planes; ++p) {
    const float v = dout[p] / static_cast<float>(hw);
    float* dx = din + static_cast<size_t>(p) * hw;
    for (int j = 0; j < hw; ++j) store(dx + j, v, accumulate);
  }
}

// ---------------------------------------------------------------- batch norm

void CpuBackend::batchnorm_forward_train(float* out, float* save_mean, float* save_invstd,
                                         float* running_mean, float* running_var, const float* in,
                                         const float* gamma, const float* beta, int n, int c, int hw,
                                         float eps, float momentum) {
  const double count = static_cast<double>(n) * hw;
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int ch = 0; ch < c; ++ch) {
    double s = 0.0;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) s += x[j];
    }
    const double mean = s / count;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) ss += (x[j] - mean) * (x[j] - mean);
    }
    const double var = ss / count;
    const float invstd = static_cast<float>(1.0 / std::sqrt(var + eps));
    save_mean[ch] = static_cast<float>(mean);
    save_invstd[ch] = invstd;
    const double unbiased = count > 1 ? ss / (count - 1) : var;
    running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
    running_var[ch] = static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
    const float scale = g * invstd, shift = b - static_cast<float>(mean) * scale;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      float* y = out + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) y[j] = x[j] * scale + shift;
    }
  }
}

void CpuBackend::batchnorm_forward_eval(float* out, const float* in, const float* gamma,
                                        const float* beta, const float* running_mean,
                                        const float* running_var, int n, int c, int hw, float eps) {
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int ch = 0; ch < c; ++ch) {
    const float invstd = 1.0f / std::sqrt(running_var[ch] + eps);
    const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
    const float scale = g * invstd, shift = b - running_mean[ch] * scale;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      float* y = out + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) y[j] = x[j] * scale + shift;
    }
  }
}

void CpuBackend::batchnorm_backward_train(float* din, float* dgamma, float* dbeta, const float* dout,
                                          const float* in, const float* gamma, const float* save_mean,
                                          const float* save_invstd, int n, int c, int hw,
                                          bool accumulate) {
  const double count = static_cast<double>(n) * hw;
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int ch = 0; ch < c; ++ch) {
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      const float* g = dout + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) {
        sum_dy += g[j];
        sum_dy_xhat += g[j] * (x[j] - mean) * invstd;
      }
    }
    if (dgamma) dgamma[ch] = static_cast<float>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<float>(sum_dy);
    if (!din) continue;
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    const float gm = gamma ? gamma[ch] : 1.0f;
    const float k = gm * invstd;
    const float mdy = static_cast<float>(sum_dy / count), mdyx = static_cast<float>(sum_dy_xhat / count);
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      const float* g = dout + (static_cast<size_t>(i) * c + ch) * hw;
      float* dx = din + (static_cast<size_t>(i) * c + ch) * hw;
      for (int j = 0; j < hw; ++j) {
        const float xhat = (x[j] - mean) * invstd;
        store(dx + j, k * (g[j] - mdy - xhat * mdyx), accumulate);
      }
    }
  }
}

void CpuBackend::batchnorm_backward_eval(float* din, float* dgamma, float* dbeta, const float* dout,
                                         const float* in, const float* gamma,
                                         const float* running_mean, const float* running_var, int n,
                                         int c, int hw, float eps, bool accumulate) {
#pragma omp parallel for schedule(static) num_threads(threads_)
  for (int ch = 0; ch < c; ++ch) {
    const float invstd = 1.0f / std::sqrt(running_var[ch] + eps);
    const float mean = running_mean[ch];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    const float k = (gamma ? gamma[ch] : 1.0f) * invstd;
    for (int i = 0; i < n; ++i) {
      const float* x = in + (static_cast<size_t>(i) * c + ch) * hw;
      const float* g = dout + (static_cast<size_t>(i) * c + ch) * hw;
      float* dx = din ? din + (static_cast<size_t>(i) * c + ch) * hw : nullptr;
      for (int j = 0; j < hw; ++j) {
        sum_dy += g[j];
        sum_dy_xhat += g[j] * (x[j] - mean) * invstd;
        if (dx) store(dx + j, k * g[j], accumulate);
      }
    }
    if (dgamma) dgamma[ch] = static_cast<float>(sum_dy_xhat);
    if (dbeta) dbeta[ch] = static_cast<float>(sum_dy);
  }
}

// ---------------------------------------------------------------- dropout

void CpuBackend::dropout_forward(float* out, float* mask, const float* in, size_t n, float p,
                                 uint64_t seed, uint64_t counter) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    mask[i] = dropout_uniform(seed, counter, i) < p ? 0.0f : scale;
    out[i] = in[i] * mask[i];
  }
}

void CpuBackend::dropout_backward(float* din, const float* dout, const float* mask, size_t n,
                                  bool accumulate) {
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) store(din + i, dout[i] * mask[i], accumulate);
}

// ---------------------------------------------------------------- pointwise

void CpuBackend::activation_forward(float* out, const float* in, size_t n, Activation a, float alpha) {
  switch (a) {
    case Activation::kReLU:
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n > kParallelMin)
      // Written so NaN passes through (as in PyTorch): a NaN must reach the loss and be reported.
      for (size_t i = 0; i < n; ++i) out[i] = in[i] < 0.0f ? 0.0f : in[i];
      break;
    case Activation::kLeakyReLU:
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? in[i] : alpha * in[i];
      break;
    case Activation::kGELU:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) out[i] = 0.5f * in[i] * (1.0f + std::erf(in[i] * 0.70710678118654752f));
      break;
    case Activation::kTanh:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
      break;
    case Activation::kSigmoid:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-in[i]));
      break;
  }
}

void CpuBackend::activation_backward(float* din, const float* dout, const float* in, const float* out,
                                     size_t n, Activation a, float alpha, bool accumulate) {
  switch (a) {
    case Activation::kReLU:
      if (accumulate) {
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n > kParallelMin)
        for (size_t i = 0; i < n; ++i) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
      } else {
#pragma omp parallel for simd schedule(static) num_threads(threads_) if (n > kParallelMin)
        for (size_t i = 0; i < n; ++i) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
      }
      break;
    case Activation::kLeakyReLU:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) store(din + i, in[i] > 0.0f ? dout[i] : alpha * dout[i], accumulate);
      break;
    case Activation::kGELU:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) {
        const float x = in[i];
        const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
        store(din + i, dout[i] * (cdf + x * pdf), accumulate);
      }
      break;
    case Activation::kTanh:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) store(din + i, dout[i] * (1.0f - out[i] * out[i]), accumulate);
      break;
    case Activation::kSigmoid:
#pragma omp parallel for schedule(static) num_threads(threads_) if (n > kParallelMin)
      for (size_t i = 0; i < n; ++i) store(din + i, dout[i] * out[i] * (1.0f - out[i]), accumulate);
      break;
  }
}

// ---------------------------------------------------------------- concat

void CpuBackend::concat_forward_part(float* out, const float* in, int n, int c_part, int c_total,
                                     int c_offset, int hw) {
  const size_t block = static_cast<size_t>(c_part) * hw;
  for (int i = 0; i < n; ++i)
    std::memcpy(out + (static_cast<size_t>(i) * c_total + c_offset) * hw, in + i * block, block * sizeof(float));
}

void CpuBackend::concat_backward_part(float* din, const float* dout, int n, int c_part, int c_total,
                                      int c_offset, int hw, bool accumulate) {
  const size_t block = static_cast<size_t>(c_part) * hw;
  for (int i = 0; i < n; ++i) {
    const float* src = dout + (static_cast<size_t>(i) * c_total + c_offset) * hw;
    float* dst = din + i * block;
    if (accumulate) for (size_t j = 0; j < block; ++j) dst[j] += src[j];
    else std::memcpy(dst, src, block * sizeof(float));
  }
}

// ---------------------------------------------------------------- losses

void CpuBackend::softmax_xent(float* dlogits, double* loss_sum, int64_t* correct, const float* logits,
                              const int32_t* labels, int n, int k, float smoothing) {
  double total = 0.0;
  int64_t hits = 0;
  const float inv_n = 1.0f / static_cast<float>(n);
  const float off = smoothing / static_cast<float>(k), on = 1.0f - smoothing + off;
  // Serial on purpose: logits are small (batch x classes) and the sum stays in sample order.
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<size_t>(i) * k;
    int arg = 0;
    float m = z[0];
    for (int j = 1; j < k; ++j)
      if (z[j] > m) { m = z[j]; arg = j; }
    double s = 0.0, zsum = 0.0;
    for (int j = 0; j < k; ++j) {
      s += std::exp(static_cast<double>(z[j] - m));
      zsum += z[j];
    }
    const double lse = m + std::log(s);
    const int y = labels[i];
    total += lse - (1.0 - smoothing) * z[y] - smoothing * (zsum / k);
    hits += arg == y;
    if (dlogits) {
      float* g = dlogits + static_cast<size_t>(i) * k;
      for (int j = 0; j < k; ++j) {
        const float p = static_cast<float>(std::exp(static_cast<double>(z[j]) - lse));
        g[j] = (p - (j == y ? on : off)) * inv_n;
      }
    }
  }
  if (loss_sum) *loss_sum = total;
  if (correct) *correct = hits;
}

void CpuBackend::mse(float* dpred, double* loss_sum, const float* pred, const float* target, int n,
                     int k) {
  double total = 0.0;
  const float scale = 2.0f / (static_cast<float>(n) * k);
  for (int i = 0; i < n; ++i) {
    double s = 0.0;
    for (int j = 0; j < k; ++j) {
      const size_t idx = static_cast<size_t>(i) * k + j;
      const float diff = pred[idx] - target[idx];
      s += static_cast<double>(diff) * diff;
      if (dpred) dpred[idx] = scale * diff;
    }
    total += s / k;
  }
  if (loss_sum) *loss_sum = total;
}

int32_t* CpuBackend::alloc_labels(size_t n) { return reinterpret_cast<int32_t*>(alloc(n)); }
void CpuBackend::free_labels(int32_t* p) { free(reinterpret_cast<float*>(p)); }
void CpuBackend::upload_labels(int32_t* dst, const int32_t* host, size_t n) {
  if (dst != host) std::memcpy(dst, host, n * sizeof(int32_t));
}

}  // namespace kestrel::trainer::cpu

namespace kestrel::trainer {

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu::CpuBackend>(threads);
}

namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, BackendFactory>& registry() {
  static std::map<std::string, BackendFactory> r;
  return r;
}
}  // namespace

void register_backend(const std::string& kind, BackendFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[kind] = std::move(factory);
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device.empty() || device == "cpu") return make_cpu_backend(threads);
  std::string kind = device;
  int index = 0;
  if (const auto colon = device.find(':'); colon != std::string::npos) {
    kind = device.substr(0, colon);
    const std::string idx = device.substr(colon + 1);
    if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos)
      throw ConfigError("device '" + device + "': expected cpu, KIND or KIND:INDEX (e.g. cuda:0)");
    index = std::stoi(idx);
  }
  BackendFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(kind);
    if (it == registry().end())
      throw ConfigError("device '" + device + "': no '" + kind + "' backend in this build (available: cpu" +
                        [&] {
                          std::string names;
                          for (const auto& [k, _] : registry()) names += ", " + k;
                          return names;
                        }() + ")");
    factory = it->second;
  }
  return factory(index, threads);
}

}  // namespace kestrel::trainer
