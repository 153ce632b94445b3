// Parity of every CUDA op with the CPU reference on the same random input (tolerances and their
// reasons in cuda_test_util.hpp). Without a CUDA device every test here skips with the reason.
#include <gtest/gtest.h>

#include <limits>

#include "tests/trainer_cuda/cuda_test_util.hpp"

namespace kestrel::trainer::cuda::testing {
namespace {

TEST_F(CudaParity, LinearForwardWithBiasAndReluMatchesCpu) {
  const int n = 37, in_f = 300, out_f = 29;
  const auto x = random_vector(size_t(n) * in_f, 1), w = random_vector(size_t(out_f) * in_f, 2, 0.05f),
             b = random_vector(out_f, 3, 0.1f);
  for (bool relu : {false, true}) {
    std::vector<float> want(size_t(n) * out_f);
    cpu_->linear_forward(want.data(), x.data(), w.data(), b.data(), n, in_f, out_f, relu);
    DeviceBuf dx(*gpu_, x), dw(*gpu_, w), db(*gpu_, b), out(*gpu_, want.size());
    gpu_->linear_forward(out.get(), dx.get(), dw.get(), db.get(), n, in_f, out_f, relu);
    EXPECT_TRUE(all_close(out.host(), want, kGemmAtol, kGemmRtol)) << "relu " << relu;
  }
}

TEST_F(CudaParity, LinearBackwardMatchesCpuIncludingAccumulation) {
  const int n = 64, in_f = 120, out_f = 33;
  const auto x = random_vector(size_t(n) * in_f, 4), w = random_vector(size_t(out_f) * in_f, 5, 0.1f),
             dy = random_vector(size_t(n) * out_f, 6), din0 = random_vector(size_t(n) * in_f, 7);
  for (bool acc : {false, true}) {
    std::vector<float> din = din0, dw(w.size()), db(out_f);
    cpu_->linear_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), n, in_f, out_f, acc);
    DeviceBuf gx(*gpu_, x), gw(*gpu_, w), gdy(*gpu_, dy), gdin(*gpu_, din0), gdw(*gpu_, w.size()), gdb(*gpu_, out_f);
    gpu_->linear_backward(gdin.get(), gdw.get(), gdb.get(), gdy.get(), gx.get(), gw.get(), n, in_f, out_f, acc);
    EXPECT_TRUE(all_close(gdin.host(), din, kGemmAtol, kGemmRtol)) << "din, accumulate " << acc;
    EXPECT_TRUE(all_close(gdw.host(), dw, kGemmAtol, kGemmRtol)) << "dw";
    EXPECT_TRUE(all_close(gdb.host(), db, kGemmAtol, kGemmRtol)) << "db";
  }
}

TEST_F(CudaParity, LinearForwardInTf32StaysWithinItsTolerance) {
  // TF32 keeps 10 mantissa bits of each factor (relative error ~2^-10 per product); over 300
  // products of size ~0.05 with random signs that is ~1e-3 absolute, so 5e-3 (FP32 would pass far
  // tighter; a wrong result would not pass at all).
  CudaBackend tf32(CudaOptions{0, true});
  const int n = 64, in_f = 300, out_f = 64;
  const auto x = random_vector(size_t(n) * in_f, 8), w = random_vector(size_t(out_f) * in_f, 9, 0.05f);
  std::vector<float> want(size_t(n) * out_f);
  cpu_->linear_forward(want.data(), x.data(), w.data(), nullptr, n, in_f, out_f, false);
  DeviceBuf dx(tf32, x), dw(tf32, w), out(tf32, want.size());
  tf32.linear_forward(out.get(), dx.get(), dw.get(), nullptr, n, in_f, out_f, false);
  EXPECT_TRUE(all_close(out.host(), want, 5e-3, 5e-3));
}

TEST_F(CudaParity, LinearInBf16WithFp32AccumulationStaysWithinItsTolerance) {
  // bf16 keeps 8 significant bits: each factor is off by up to 2^-8 relative (sd ~2.3e-3), a
  // product by sd ~3.2e-3 of its size. Forward: 300 products of size ~0.05, error sd ~3e-3, so
  // 3e-2 is ~10 sd while outputs are ~1 (a wrong element still fails). dw: 48 products of size ~1,
  // error sd ~2.2e-2, so 0.15 (~7 sd) against sums of size ~7.
  CudaBackend bf16(CudaOptions{0, false, true});
  const int n = 48, in_f = 300, out_f = 40;
  const auto x = random_vector(size_t(n) * in_f, 15), w = random_vector(size_t(out_f) * in_f, 16, 0.05f),
             dy = random_vector(size_t(n) * out_f, 17);
  std::vector<float> y(size_t(n) * out_f), din(x.size()), dw(w.size());
  cpu_->linear_forward(y.data(), x.data(), w.data(), nullptr, n, in_f, out_f, false);
  cpu_->linear_backward(din.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), n, in_f, out_f, false);
  DeviceBuf gx(bf16, x), gw(bf16, w), gdy(bf16, dy), gy(bf16, y.size()), gdin(bf16, x.size()), gdw(bf16, w.size());
  bf16.linear_forward(gy.get(), gx.get(), gw.get(), nullptr, n, in_f, out_f, false);
  bf16.linear_backward(gdin.get(), gdw.get(), nullptr, gdy.get(), gx.get(), gw.get(), n, in_f, out_f, false);
  EXPECT_TRUE(all_close(gy.host(), y, 3e-2, 2e-2)) << "forward";
  EXPECT_TRUE(all_close(gdin.host(), din, 3e-2, 2e-2)) << "din";
  EXPECT_TRUE(all_close(gdw.host(), dw, 0.15, 2e-2)) << "dw";
}

struct ConvCase {
  ConvDims d;
  const char* what;
};

class CudaConvParity : public CudaParity, public ::testing::WithParamInterface<ConvCase> {};

TEST_P(CudaConvParity, ForwardAndBackwardMatchCpu) {
  const ConvDims d = GetParam().d;
  const size_t in_n = size_t(d.n) * d.c_in * d.h * d.w;
  const size_t w_n = size_t(d.c_out) * (d.c_in / d.groups) * d.kh * d.kw;
  const size_t out_n = size_t(d.n) * d.c_out * d.h_out() * d.w_out();
  const auto x = random_vector(in_n, 10), w = random_vector(w_n, 11, 0.2f), b = random_vector(d.c_out, 12, 0.1f),
             dy = random_vector(out_n, 13), din0 = random_vector(in_n, 14);
  std::vector<float> ws(cpu_->conv2d_workspace(d) + 1);
  for (bool relu : {false, true}) {
    std::vector<float> want(out_n);
    cpu_->conv2d_forward(want.data(), x.data(), w.data(), b.data(), ws.data(), d, relu);
    DeviceBuf gx(*gpu_, x), gw(*gpu_, w), gb(*gpu_, b), out(*gpu_, out_n), gws(*gpu_, gpu_->conv2d_workspace(d) + 1);
    gpu_->conv2d_forward(out.get(), gx.get(), gw.get(), gb.get(), gws.get(), d, relu);
    EXPECT_TRUE(all_close(out.host(), want, kGemmAtol, kGemmRtol)) << GetParam().what << " forward, relu " << relu;
  }
  for (bool acc : {false, true}) {
    std::vector<float> din = din0, dw(w_n), db(d.c_out);
    cpu_->conv2d_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), ws.data(), d, acc);
    DeviceBuf gx(*gpu_, x), gw(*gpu_, w), gdy(*gpu_, dy), gdin(*gpu_, din0), gdw(*gpu_, w_n), gdb(*gpu_, d.c_out),
        gws(*gpu_, gpu_->conv2d_workspace(d) + 1);
    gpu_->conv2d_backward(gdin.get(), gdw.get(), gdb.get(), gdy.get(), gx.get(), gw.get(), gws.get(), d, acc);
    EXPECT_TRUE(all_close(gdin.host(), din, kGemmAtol, kGemmRtol)) << GetParam().what << " din, accumulate " << acc;
    EXPECT_TRUE(all_close(gdw.host(), dw, kLongSumAtol, kLongSumRtol)) << GetParam().what << " dw";
    EXPECT_TRUE(all_close(gdb.host(), db, kLongSumAtol, kLongSumRtol)) << GetParam().what << " db";
  }
}

ConvDims conv(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad, int groups) {
  ConvDims d;
  d.n = n, d.c_in = c_in, d.h = h, d.w = w, d.c_out = c_out, d.kh = k, d.kw = k;
  d.stride = stride, d.pad = pad, d.groups = groups;
  return d;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaConvParity,
                         ::testing::Values(ConvCase{conv(4, 1, 28, 28, 8, 3, 1, 0, 1), "3x3 valid (the CNN's first layer)"},
                                           ConvCase{conv(3, 6, 13, 11, 10, 3, 1, 1, 1), "3x3 same padding"},
                                           ConvCase{conv(2, 4, 15, 15, 6, 5, 2, 2, 2), "5x5 stride 2, groups 2"},
                                           ConvCase{conv(5, 16, 7, 7, 8, 1, 1, 0, 1), "1x1 pointwise"}));

TEST_F(CudaParity, MaxPoolForwardAndBackwardMatchCpu) {
  for (auto [k, stride, pad] : {std::tuple{2, 2, 0}, std::tuple{3, 2, 1}, std::tuple{3, 1, 1}}) {
    PoolDims d;
    d.n = 3, d.c = 4, d.h = 13, d.w = 10, d.k = k, d.stride = stride, d.pad = pad;
    const size_t in_n = size_t(d.n) * d.c * d.h * d.w, out_n = size_t(d.n) * d.c * d.h_out() * d.w_out();
    auto x = random_vector(in_n, 20);
    for (size_t i = 0; i + 1 < in_n; i += 7) x[i] = x[i + 1];  // ties: the first maximum takes the gradient
    const auto dy = random_vector(out_n, 21), din0 = random_vector(in_n, 22);
    std::vector<float> y(out_n);
    cpu_->maxpool_forward(y.data(), x.data(), d);
    DeviceBuf gx(*gpu_, x), gy(*gpu_, out_n), gdy(*gpu_, dy);
    gpu_->maxpool_forward(gy.get(), gx.get(), d);
    EXPECT_EQ(gy.host(), y) << "forward k" << k << " s" << stride << " p" << pad;
    for (bool acc : {false, true})
      for (bool relu_input : {false, true}) {
        std::vector<float> din = din0;
        cpu_->maxpool_backward(din.data(), dy.data(), x.data(), y.data(), d, acc, relu_input);
        DeviceBuf gdin(*gpu_, din0);
        gpu_->maxpool_backward(gdin.get(), gdy.get(), gx.get(), gy.get(), d, acc, relu_input);
        // Overlapping windows add in another order (atomics): one rounding per addition.
        EXPECT_TRUE(all_close(gdin.host(), din, 1e-6, 1e-6))
            << "backward k" << k << " s" << stride << " acc " << acc << " relu_input " << relu_input;
      }
  }
}

TEST_F(CudaParity, AvgPoolAndGlobalAvgPoolMatchCpu) {
  for (auto [k, stride, pad] : {std::tuple{2, 2, 0}, std::tuple{3, 2, 1}}) {
    PoolDims d;
    d.n = 2, d.c = 3, d.h = 9, d.w = 12, d.k = k, d.stride = stride, d.pad = pad;
    const size_t in_n = size_t(d.n) * d.c * d.h * d.w, out_n = size_t(d.n) * d.c * d.h_out() * d.w_out();
    const auto x = random_vector(in_n, 30), dy = random_vector(out_n, 31), din0 = random_vector(in_n, 32);
    std::vector<float> y(out_n);
    cpu_->avgpool_forward(y.data(), x.data(), d);
    DeviceBuf gx(*gpu_, x), gy(*gpu_, out_n), gdy(*gpu_, dy);
    gpu_->avgpool_forward(gy.get(), gx.get(), d);
    EXPECT_TRUE(all_close(gy.host(), y, kPointwiseAtol, kPointwiseRtol));
    for (bool acc : {false, true}) {
      std::vector<float> din = din0;
      cpu_->avgpool_backward(din.data(), dy.data(), d, acc);
      DeviceBuf gdin(*gpu_, din0);
      gpu_->avgpool_backward(gdin.get(), gdy.get(), d, acc);
      EXPECT_TRUE(all_close(gdin.host(), din, kPointwiseAtol, kPointwiseRtol)) << "accumulate " << acc;
    }
  }
  const int n = 3, c = 5, hw = 49;
  const auto x = random_vector(size_t(n) * c * hw, 33), dy = random_vector(size_t(n) * c, 34);
  std::vector<float> y(size_t(n) * c), din(x.size(), 1.0f);
  cpu_->global_avgpool_forward(y.data(), x.data(), n, c, hw);
  cpu_->global_avgpool_backward(din.data(), dy.data(), n, c, hw, true);
  DeviceBuf gx(*gpu_, x), gy(*gpu_, y.size()), gdy(*gpu_, dy), gdin(*gpu_, x.size(), 1.0f);
  gpu_->global_avgpool_forward(gy.get(), gx.get(), n, c, hw);
  gpu_->global_avgpool_backward(gdin.get(), gdy.get(), n, c, hw, true);
  EXPECT_TRUE(all_close(gy.host(), y, kPointwiseAtol, kPointwiseRtol));
  EXPECT_TRUE(all_close(gdin.host(), din, kPointwiseAtol, kPointwiseRtol));
}

TEST_F(CudaParity, BatchNormTrainAndEvalMatchCpuIncludingRunningStatistics) {
  const int n = 8, c = 6, hw = 50;
  const size_t total = size_t(n) * c * hw;
  auto x = random_vector(total, 40);
  for (auto& v : x) v = 3.0f + 2.0f * v;  // a non-zero mean exercises the centring
  const auto gamma = random_vector(c, 41), beta = random_vector(c, 42), dy = random_vector(total, 43),
             din0 = random_vector(total, 44);
  std::vector<float> y(total), mean(c), invstd(c), rmean(c, 0.5f), rvar(c, 2.0f);
  cpu_->batchnorm_forward_train(y.data(), mean.data(), invstd.data(), rmean.data(), rvar.data(), x.data(),
                                gamma.data(), beta.data(), n, c, hw, 1e-5f, 0.1f);
  DeviceBuf gx(*gpu_, x), gg(*gpu_, gamma), gb(*gpu_, beta), gy(*gpu_, total), gm(*gpu_, c), gi(*gpu_, c),
      grm(*gpu_, c, 0.5f), grv(*gpu_, c, 2.0f), gdy(*gpu_, dy);
  gpu_->batchnorm_forward_train(gy.get(), gm.get(), gi.get(), grm.get(), grv.get(), gx.get(), gg.get(), gb.get(), n,
                                c, hw, 1e-5f, 0.1f);
  EXPECT_TRUE(all_close(gy.host(), y, kReduceAtol * 10, kReduceRtol));
  EXPECT_TRUE(all_close(gm.host(), mean, kReduceAtol, kReduceRtol));
  EXPECT_TRUE(all_close(gi.host(), invstd, kReduceAtol, kReduceRtol));
  EXPECT_TRUE(all_close(grm.host(), rmean, kReduceAtol, kReduceRtol));
  EXPECT_TRUE(all_close(grv.host(), rvar, kReduceAtol, kReduceRtol));
  for (bool acc : {false, true}) {
    std::vector<float> din = din0, dg(c), dbt(c);
    cpu_->batchnorm_backward_train(din.data(), dg.data(), dbt.data(), dy.data(), x.data(), gamma.data(), mean.data(),
                                   invstd.data(), n, c, hw, acc);
    DeviceBuf gdin(*gpu_, din0), gdg(*gpu_, c), gdb(*gpu_, c);
    gpu_->batchnorm_backward_train(gdin.get(), gdg.get(), gdb.get(), gdy.get(), gx.get(), gg.get(), gm.get(), gi.get(),
                                   n, c, hw, acc);
    EXPECT_TRUE(all_close(gdin.host(), din, 1e-5, 1e-4)) << "train din, accumulate " << acc;
    EXPECT_TRUE(all_close(gdg.host(), dg, 1e-4, kReduceRtol)) << "dgamma";
    EXPECT_TRUE(all_close(gdb.host(), dbt, 1e-4, kReduceRtol)) << "dbeta";
  }
  std::vector<float> ye(total), dine = din0, dge(c), dbe(c);
  cpu_->batchnorm_forward_eval(ye.data(), x.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), n, c, hw,
                               1e-5f);
  cpu_->batchnorm_backward_eval(dine.data(), dge.data(), dbe.data(), dy.data(), x.data(), gamma.data(), rmean.data(),
                                rvar.data(), n, c, hw, 1e-5f, true);
  DeviceBuf gye(*gpu_, total), gdine(*gpu_, din0), gdge(*gpu_, c), gdbe(*gpu_, c);
  gpu_->batchnorm_forward_eval(gye.get(), gx.get(), gg.get(), gb.get(), grm.get(), grv.get(), n, c, hw, 1e-5f);
  gpu_->batchnorm_backward_eval(gdine.get(), gdge.get(), gdbe.get(), gdy.get(), gx.get(), gg.get(), grm.get(), grv.get(),
                                n, c, hw, 1e-5f, true);
  EXPECT_TRUE(all_close(gye.host(), ye, 1e-5, kReduceRtol));
  EXPECT_TRUE(all_close(gdine.host(), dine, 1e-5, kReduceRtol));
  EXPECT_TRUE(all_close(gdge.host(), dge, 1e-4, kReduceRtol));
  EXPECT_TRUE(all_close(gdbe.host(), dbe, 1e-4, kReduceRtol));
}

TEST_F(CudaParity, DropoutDrawsTheCpuMaskBitForBit) {
  const size_t n = 10007;
  const auto x = random_vector(n, 50), dy = random_vector(n, 51);
  std::vector<float> y(n), mask(n), din(n);
  cpu_->dropout_forward(y.data(), mask.data(), x.data(), n, 0.3f, 1234, 77);
  cpu_->dropout_backward(din.data(), dy.data(), mask.data(), n, false);
  DeviceBuf gx(*gpu_, x), gy(*gpu_, n), gmask(*gpu_, n), gdy(*gpu_, dy), gdin(*gpu_, n);
  gpu_->dropout_forward(gy.get(), gmask.get(), gx.get(), n, 0.3f, 1234, 77);
  gpu_->dropout_backward(gdin.get(), gdy.get(), gmask.get(), n, false);
  EXPECT_EQ(gmask.host(), mask);  // integer hashing: the same mask exactly
  EXPECT_EQ(gy.host(), y);
  EXPECT_EQ(gdin.host(), din);
}

TEST_F(CudaParity, ActivationsForwardAndBackwardMatchCpu) {
  const size_t n = 4099;
  auto x = random_vector(n, 60, 2.0f);
  x[0] = std::numeric_limits<float>::quiet_NaN();  // NaN must pass through, as on the CPU
  x[1] = 0.0f;
  const auto dy = random_vector(n, 61), din0 = random_vector(n, 62);
  for (Activation a : {Activation::kReLU, Activation::kLeakyReLU, Activation::kGELU, Activation::kTanh,
                       Activation::kSigmoid}) {
    std::vector<float> y(n);
    cpu_->activation_forward(y.data(), x.data(), n, a, 0.02f);
    DeviceBuf gx(*gpu_, x), gy(*gpu_, n), gdy(*gpu_, dy);
    gpu_->activation_forward(gy.get(), gx.get(), n, a, 0.02f);
    EXPECT_TRUE(all_close(gy.host(), y, kPointwiseAtol, kPointwiseRtol)) << "forward " << int(a);
    for (bool acc : {false, true}) {
      std::vector<float> din = din0;
      cpu_->activation_backward(din.data(), dy.data(), x.data(), y.data(), n, a, 0.02f, acc);
      DeviceBuf gdin(*gpu_, din0);
      gpu_->activation_backward(gdin.get(), gdy.get(), gx.get(), gy.get(), n, a, 0.02f, acc);
      EXPECT_TRUE(all_close(gdin.host(), din, kPointwiseAtol, kPointwiseRtol)) << "backward " << int(a) << " acc " << acc;
    }
  }
}

TEST_F(CudaParity, ConcatPartsMatchCpuExactly) {
  const int n = 3, c_part = 2, c_total = 5, c_offset = 1, hw = 17;
  const auto part = random_vector(size_t(n) * c_part * hw, 70), whole0 = random_vector(size_t(n) * c_total * hw, 71),
             din0 = random_vector(part.size(), 72);
  std::vector<float> whole = whole0, din = din0;
  cpu_->concat_forward_part(whole.data(), part.data(), n, c_part, c_total, c_offset, hw);
  cpu_->concat_backward_part(din.data(), whole0.data(), n, c_part, c_total, c_offset, hw, true);
  DeviceBuf gpart(*gpu_, part), gwhole(*gpu_, whole0), gwhole0(*gpu_, whole0), gdin(*gpu_, din0);
  gpu_->concat_forward_part(gwhole.get(), gpart.get(), n, c_part, c_total, c_offset, hw);
  gpu_->concat_backward_part(gdin.get(), gwhole0.get(), n, c_part, c_total, c_offset, hw, true);
  EXPECT_EQ(gwhole.host(), whole);
  EXPECT_EQ(gdin.host(), din);
}

TEST_F(CudaParity, SoftmaxCrossEntropyAndMseMatchCpu) {
  const int n = 300, k = 10;
  const auto logits = random_vector(size_t(n) * k, 80, 3.0f);
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = (i * 7) % k;
  for (float smoothing : {0.0f, 0.1f}) {
    std::vector<float> dl(logits.size());
    double loss = 0;
    int64_t hits = 0;
    cpu_->softmax_xent(dl.data(), &loss, &hits, logits.data(), labels.data(), n, k, smoothing);
    DeviceBuf gl(*gpu_, logits), gdl(*gpu_, logits.size());
    int32_t* glab = gpu_->alloc_labels(n);
    gpu_->upload_labels(glab, labels.data(), n);
    double gloss = 0;
    int64_t ghits = -1;
    gpu_->softmax_xent(gdl.get(), &gloss, &ghits, gl.get(), glab, n, k, smoothing);
    gpu_->free_labels(glab);
    // Both sides work in double per sample; only the order of the batch sum differs.
    EXPECT_NEAR(gloss, loss, 1e-9 * std::abs(loss)) << "smoothing " << smoothing;
    EXPECT_EQ(ghits, hits);
    EXPECT_TRUE(all_close(gdl.host(), dl, 1e-7, kPointwiseRtol));
  }
  const auto pred = random_vector(size_t(n) * k, 81), target = random_vector(size_t(n) * k, 82);
  std::vector<float> dp(pred.size());
  double loss = 0, gloss = 0;
  cpu_->mse(dp.data(), &loss, pred.data(), target.data(), n, k);
  DeviceBuf gp(*gpu_, pred), gt(*gpu_, target), gdp(*gpu_, pred.size());
  gpu_->mse(gdp.get(), &gloss, gp.get(), gt.get(), n, k);
  EXPECT_NEAR(gloss, loss, 1e-9 * std::abs(loss));
  EXPECT_TRUE(all_close(gdp.host(), dp, 0.0, 1e-6));
}

}  // namespace
}  // namespace kestrel::trainer::cuda::testing
