// Finite-difference checks of every layer's backward pass (parameters and input) on the CPU backend.
// Central differences with step h = 1e-2, accumulated in double; pass when
// |analytic - numeric| <= 5e-4 + 2e-3 * |numeric| (float32 forward noise is ~1e-5 at this step).
#include <gtest/gtest.h>

#include "grad_check.hpp"
#include "trainer/graph.hpp"

namespace kestrel::trainer {
namespace {

using testing::check_gradients;
using testing::GradCheckOptions;

void expect_ok(const Graph& g, GradCheckOptions opt = {}, const std::function<void(Model&)>& prep = {}) {
  const auto r = check_gradients(g, opt, prep);
  EXPECT_GT(r.checked, 0);
  EXPECT_EQ(r.failed, 0) << r.first_failure << " (" << r.failed << " of " << r.checked
                         << " failed, worst ratio " << r.worst << ")";
}

// Inputs spaced at least 0.05 apart and away from zero, so no probe of +-h crosses a kink of
// ReLU/LeakyReLU or changes which element a max pool selects.
std::vector<float> kink_free_input(int64_t count, uint64_t seed) {
  std::vector<int64_t> perm = seeded_permutation(count, seed);
  std::vector<float> x(count);
  for (int64_t i = 0; i < count; ++i) {
    const float v = 0.05f * static_cast<float>(perm[i] - count / 2);
    x[i] = v >= 0 ? v + 0.025f : v - 0.025f;
  }
  return x;
}

TEST(LayerGradients, LinearWithAndWithoutBias) {
  Graph g({2, 3, 3});
  g.add(ops::linear(5), g.input());
  expect_ok(g);
  Graph g2({7, 1, 1});
  g2.add(ops::linear(4, false), g2.input());
  expect_ok(g2);
}

TEST(LayerGradients, Conv2dPaddedStride1) {
  Graph g({3, 6, 5});
  g.add(ops::conv2d(4, 3, 1, 1), g.input());
  expect_ok(g);
}

TEST(LayerGradients, Conv2dStride2NoPaddingNoBias) {
  Graph g({2, 7, 7});
  g.add(ops::conv2d(3, 3, 2, 0, 1, false), g.input());
  expect_ok(g);
}

TEST(LayerGradients, Conv2dGroupedAndDepthwise) {
  Graph g({4, 5, 5});
  g.add(ops::conv2d(6, 3, 1, 1, 2), g.input());
  expect_ok(g);
  Graph d({4, 5, 5});
  d.add(ops::conv2d(4, 3, 2, 1, 4), d.input());
  expect_ok(d);
}

TEST(LayerGradients, Conv2dPointwise) {
  Graph g({5, 4, 3});
  g.add(ops::conv2d(3, 1), g.input());
  expect_ok(g);
}

TEST(LayerGradients, MaxPoolPlainAndPadded) {
  Graph g({2, 6, 6});
  g.add(ops::max_pool(2), g.input());
  GradCheckOptions opt;
  opt.input = kink_free_input(opt.batch * 72, 3);
  expect_ok(g, opt);
  Graph p({2, 5, 5});
  p.add(ops::max_pool(3, 2, 1), p.input());
  opt.input = kink_free_input(opt.batch * 50, 4);
  expect_ok(p, opt);
}

TEST(LayerGradients, AvgPoolAndGlobalAvgPool) {
  Graph g({2, 5, 5});
  g.add(ops::avg_pool(3, 2, 1), g.input());
  expect_ok(g);
  Graph s({2, 4, 4});
  s.add(ops::avg_pool(2), s.input());
  expect_ok(s);
  Graph ga({3, 4, 5});
  ga.add(ops::global_avg_pool(), ga.input());
  expect_ok(ga);
}

TEST(LayerGradients, BatchNormTrainingMode) {
  Graph g({3, 2, 2});
  const int bn = g.add(ops::batch_norm(), g.input());
  // Non-trivial affine parameters so a wrong gamma/beta term would show.
  GradCheckOptions opt;
  opt.batch = 4;
  expect_ok(g, opt, [&](Model& m) {
    m.set_tensor(g.node(bn).name + ".weight", {1.5f, -0.7f, 0.9f});
    m.set_tensor(g.node(bn).name + ".bias", {0.2f, 0.1f, -0.3f});
  });
  Graph v({5, 1, 1});  // BatchNorm1d on features
  v.add(ops::batch_norm(), v.input());
  expect_ok(v, opt);
}

TEST(LayerGradients, BatchNormEvaluationMode) {
  Graph g({3, 2, 2});
  const int bn = g.add(ops::batch_norm(), g.input());
  GradCheckOptions opt;
  opt.train = false;
  expect_ok(g, opt, [&](Model& m) {
    const std::string name = g.node(bn).name;
    m.set_tensor(name + ".running_mean", {0.1f, -0.2f, 0.3f});
    m.set_tensor(name + ".running_var", {0.5f, 2.0f, 1.2f});
    m.set_tensor(name + ".weight", {1.5f, -0.7f, 0.9f});
  });
}

TEST(LayerGradients, DropoutWithFixedMask) {
  Graph g({4, 3, 3});
  g.add(ops::dropout(0.3f), g.input());
  expect_ok(g);
}

TEST(LayerGradients, PointwiseActivations) {
  const Op acts[] = {ops::relu(), ops::leaky_relu(0.1f), ops::gelu(), ops::tanh(), ops::sigmoid()};
  for (const Op& a : acts) {
    Graph g({3, 2, 2});
    g.add(a, g.input());
    GradCheckOptions opt;
    opt.input = kink_free_input(opt.batch * 12, 9);
    SCOPED_TRACE(op_name(a.kind));
    expect_ok(g, opt);
  }
}

TEST(LayerGradients, FlattenIdentityZero) {
  Graph g({2, 3, 2});
  const int f = g.add(ops::flatten(), g.input());
  g.add(ops::identity(), f);
  expect_ok(g);
  // Zero: the output ignores the input, so the input gradient must be exactly zero.
  Graph z({2, 2, 2});
  const int a = z.add(ops::tanh(), z.input());
  const int zz = z.add(ops::zero(), a);
  const int b = z.add(ops::conv2d(2, 1), z.input());
  z.add_node(ops::add(), {zz, b});
  expect_ok(z);
}

TEST(LayerGradients, AddAndConcatBranches) {
  Graph g({2, 4, 4});
  const int c1 = g.add(ops::conv2d(3, 3, 1, 1), g.input());
  const int t1 = g.add(ops::tanh(), c1);
  const int c2 = g.add(ops::conv2d(3, 1), g.input());
  const int sum = g.add_node(ops::add(), {t1, c2, c2});  // the same input twice accumulates
  const int cat = g.add_node(ops::concat(), {sum, g.input(), t1});
  g.add(ops::conv2d(2, 3, 2, 1), cat);
  expect_ok(g);
}

TEST(LayerGradients, ReluThenMaxPoolBackpropagatedTogether) {
  // A ReLU read only by a max pool is backpropagated by the pool in one pass.
  Graph g({2, 6, 6});
  const int r = g.add(ops::relu(), g.input());
  g.add(ops::max_pool(2), r);
  GradCheckOptions opt;
  opt.input = kink_free_input(opt.batch * 72, 5);
  expect_ok(g, opt);
}

// Conv2d -> ReLU and Linear -> ReLU run fused (the producer writes the ReLU's output), and a ReLU
// read only by a max pool is backpropagated by the pool. Finite
// differences are ill-posed through ReLU + max pool (ties at zero), so the fused graph is compared
// with the same graph kept unfused by Identity nodes in between, whose parts the tests above check.
TEST(LayerGradients, FusedReluGivesTheUnfusedResults) {
  auto build = [](bool fused) {
    Graph g({2, 6, 6});
    int x = g.add(ops::conv2d(3, 3, 1, 1), g.input(), "conv");
    if (!fused) x = g.add(ops::identity(), x, "keep1");
    x = g.add(ops::relu(), x, "r1");
    if (!fused) x = g.add(ops::identity(), x, "keep3");
    x = g.add(ops::max_pool(2), x, "pool");
    x = g.add(ops::linear(6), x, "fc1");
    if (!fused) x = g.add(ops::identity(), x, "keep2");
    x = g.add(ops::relu(), x, "r2");
    g.add(ops::linear(3), x, "fc2");
    return g;
  };
  auto be = make_cpu_backend(2);
  Model a(build(true), *be, 3), b(build(false), *be, 4);
  for (const auto& p : a.params()) b.set_tensor(p.name, a.tensor(p.name));
  SplitMix64 rng(8);
  std::vector<float> x(5 * 72), r(5 * 3);
  for (auto& v : x) v = static_cast<float>(2 * rng.uniform() - 1);
  for (auto& v : r) v = static_cast<float>(2 * rng.uniform() - 1);
  const float* ya = a.forward(x.data(), 5, true);
  const std::vector<float> out_a(ya, ya + 15);
  const float* yb = b.forward(x.data(), 5, true);
  EXPECT_EQ(out_a, std::vector<float>(yb, yb + 15));
  a.backward(r.data(), true);
  b.backward(r.data(), true);
  for (size_t i = 0; i < a.params().size(); ++i) {
    const std::vector<float> ga(a.grad_data(i), a.grad_data(i) + a.params()[i].size);
    const std::vector<float> gb(b.grad_data(i), b.grad_data(i) + b.params()[i].size);
    EXPECT_EQ(ga, gb) << a.params()[i].name;
  }
  EXPECT_EQ(std::vector<float>(a.input_grad(), a.input_grad() + x.size()),
            std::vector<float>(b.input_grad(), b.input_grad() + x.size()));
}

}  // namespace
}  // namespace kestrel::trainer
