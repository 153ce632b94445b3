// Tests of trainer/optim: every update rule against hand-computed steps, freezing, lr multipliers,
// weight-decay exemption, gradient clipping, state save/load and thread-count independence.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/error.hpp"
#include "trainer/optim.hpp"

// Counts every allocation through the global operator new, so tests can prove that a hot path
// does not allocate. Replacing operator new is process-wide; it only counts and forwards to
// malloc, so other tests in this binary are unaffected. (Also used by test_data.cpp.)
namespace kestrel::trainer::testing {
std::atomic<long> g_allocations{0};
}  // namespace kestrel::trainer::testing

void* operator new(std::size_t size) {
  kestrel::trainer::testing::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC's -Wmismatched-new-delete cannot see that this new is malloc underneath.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace kestrel::trainer {
namespace {

using Vec = std::vector<float>;

// The common problem of the hand-computed tests: p0 and three fixed gradients.
const Vec kP0{1.0f, -2.0f, 0.5f};
const std::vector<Vec> kGrads{{0.1f, -0.2f, 0.3f}, {0.4f, 0.0f, -0.1f}, {-0.3f, 0.2f, 0.2f}};

// Runs three steps of spec from kP0 with kGrads at learning rate lr; returns p after each step.
std::vector<Vec> three_steps(const OptimizerSpec& spec, float lr) {
  auto opt = make_optimizer(spec);
  Vec p = kP0, g(3);
  std::vector<ParamRef> params{{"w", p.data(), g.data(), 3}};
  std::vector<Vec> out;
  for (const Vec& grad : kGrads) {
    g = grad;
    opt->step(params, lr);
    out.push_back(p);
  }
  EXPECT_EQ(opt->steps(), 3);
  return out;
}

// Values after steps 1..3, written out from the formula in each test's comment (evaluated in
// double precision); float32 arithmetic stays within 2e-6 of them. tests/trainer/golden_optim.py
// re-checks every one of these tables against torch.optim 1.13 (all within 1e-7 there).
void expect_trajectory(const std::vector<Vec>& got, const std::vector<Vec>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t s = 0; s < want.size(); ++s)
    for (size_t i = 0; i < want[s].size(); ++i)
      EXPECT_NEAR(got[s][i], want[s][i], 2e-6) << "step " << s + 1 << ", element " << i;
}

OptimizerSpec spec_of(const std::string& kind) {
  OptimizerSpec s;
  s.kind = kind;
  return s;
}

TEST(Sgd, PlainStepIsMinusLrTimesGrad) {
  // p <- p - lr*g, lr = 0.1.
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.0f;
  expect_trajectory(three_steps(s, 0.1f),
                    {{0.99f, -1.98f, 0.47f}, {0.95f, -1.98f, 0.48f}, {0.98f, -2.0f, 0.46f}});
}

TEST(Sgd, MomentumWithCoupledWeightDecay) {
  // d = g + wd*p; b1 = d, b_t = mu*b_{t-1} + d; p <- p - lr*b. mu = 0.9, wd = 0.01, lr = 0.1.
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.9f;
  s.weight_decay = 0.01f;
  expect_trajectory(three_steps(s, 0.1f), {{0.989f, -1.978f, 0.4695f},
                                           {0.938111f, -1.956222f, 0.4515805f},
                                           {0.921372789f, -1.95466558f, 0.41500137f}});
}

TEST(Sgd, DampeningAppliesFromTheSecondStep) {
  // b1 = g (PyTorch: no dampening on the first step), b_t = mu*b + (1-dampening)*g; mu 0.9, damp
  // 0.5.
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.9f;
  s.dampening = 0.5f;
  expect_trajectory(
      three_steps(s, 0.1f),
      {{0.99f, -1.98f, 0.47f}, {0.961f, -1.962f, 0.448f}, {0.9499f, -1.9558f, 0.4182f}});
}

TEST(Sgd, Nesterov) {
  // b as plain momentum; p <- p - lr*(g + mu*b). mu = 0.9, lr = 0.1.
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.9f;
  s.nesterov = true;
  expect_trajectory(
      three_steps(s, 0.1f),
      {{0.981f, -1.962f, 0.443f}, {0.8969f, -1.9458f, 0.4377f}, {0.91421f, -1.96922f, 0.38593f}});
}

TEST(Adagrad, AccumulatesSquaredGradients) {
  // sum += g^2; p <- p - lr*g/(sqrt(sum) + eps). lr 0.1, eps 1e-10 (PyTorch's default).
  OptimizerSpec s = spec_of("adagrad");
  s.eps = 1e-10f;
  expect_trajectory(three_steps(s, 0.1f), {{0.9f, -1.9f, 0.4f},
                                           {0.80298575f, -1.9f, 0.431622777f},
                                           {0.861820591f, -1.97071068f, 0.378170528f}});
}

TEST(Adagrad, LrDecayAndWeightDecay) {
  // d = g + wd*p; sum += d^2; clr = lr/(1 + (t-1)*lr_decay); p <- p - clr*d/(sqrt(sum)+eps).
  // lr 0.1, lr_decay 0.5, wd 0.1, eps 1e-10.
  OptimizerSpec s = spec_of("adagrad");
  s.eps = 1e-10f;
  s.lr_decay = 0.5f;
  s.weight_decay = 0.1f;
  expect_trajectory(three_steps(s, 0.1f), {{0.9f, -1.9f, 0.4f},
                                           {0.838276824f, -1.87139621f, 0.411264254f},
                                           {0.857183223f, -1.87284766f, 0.383176272f}});
}

TEST(Adadelta, UsesRunningAveragesOfGradAndUpdate) {
  // sq = rho*sq + (1-rho)*g^2; delta = sqrt(acc+eps)/sqrt(sq+eps)*g;
  // acc = rho*acc + (1-rho)*delta^2; p <- p - lr*delta. rho 0.9, eps 1e-6, lr 1.0.
  OptimizerSpec s = spec_of("adadelta");
  s.rho = 0.9f;
  s.eps = 1e-6f;
  expect_trajectory(three_steps(s, 1.0f), {{0.996839302f, -1.99683812f, 0.496837898f},
                                           {0.992489092f, -1.99683812f, 0.498320274f},
                                           {0.996243335f, -2.00007765f, 0.495683082f}});
}

TEST(Rmsprop, PlainWithoutMomentum) {
  // sq = alpha*sq + (1-alpha)*g^2; p <- p - lr*g/(sqrt(sq)+eps). alpha 0.99, eps 1e-8, lr 0.01.
  OptimizerSpec s = spec_of("rmsprop");
  s.momentum = 0.0f;
  s.alpha = 0.99f;
  expect_trajectory(three_steps(s, 0.01f), {{0.9000001f, -1.90000005f, 0.400000033f},
                                            {0.802957327f, -1.90000005f, 0.43176607f},
                                            {0.861996765f, -1.97106514f, 0.377949144f}});
}

TEST(Rmsprop, CenteredWithMomentum) {
  // ga = alpha*ga + (1-alpha)*g; avg = sqrt(sq - ga^2) + eps; b = mu*b + g/avg; p <- p - lr*b.
  // alpha 0.9, mu 0.5, eps 1e-8, lr 0.01.
  OptimizerSpec s = spec_of("rmsprop");
  s.alpha = 0.9f;
  s.momentum = 0.5f;
  s.centered = true;
  expect_trajectory(three_steps(s, 0.01f), {{0.966666678f, -1.96666667f, 0.46666667f},
                                            {0.916780682f, -1.95000001f, 0.460653384f},
                                            {0.911198087f, -1.96519517f, 0.438528686f}});
}

TEST(Adam, BiasCorrectedMoments) {
  // m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
  // p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). b1 .9, b2 .999, eps 1e-8, lr 0.1.
  expect_trajectory(three_steps(spec_of("adam"), 0.1f),
                    {{0.90000001f, -1.9f, 0.400000003f},
                     {0.811562364f, -1.83299418f, 0.359978148f},
                     {0.793891534f, -1.84158096f, 0.299669502f}});
}

TEST(Adam, CoupledWeightDecayEntersTheMoments) {
  // As Adam with g replaced by g + wd*p, wd = 0.1.
  OptimizerSpec s = spec_of("adam");
  s.weight_decay = 0.1f;
  expect_trajectory(three_steps(s, 0.1f), {{0.900000005f, -1.9f, 0.400000003f},
                                           {0.805788911f, -1.80754f, 0.346537847f},
                                           {0.762999018f, -1.73891193f, 0.276827052f}});
}

TEST(Adam, AmsgradUsesTheMaximumSecondMoment) {
  // As Adam with v replaced by max over steps of v.
  OptimizerSpec s = spec_of("adam");
  s.amsgrad = true;
  expect_trajectory(three_steps(s, 0.1f), {{0.90000001f, -1.9f, 0.400000003f},
                                           {0.811562364f, -1.8330277f, 0.359978148f},
                                           {0.793891534f, -1.84161447f, 0.299669502f}});
}

TEST(AdamW, DecoupledDecayShrinksWeightsBeforeTheStep) {
  // p <- p*(1 - lr*wd), then the Adam step on the raw gradient. wd 0.1, lr 0.1.
  OptimizerSpec s = spec_of("adamw");
  s.weight_decay = 0.1f;
  expect_trajectory(three_steps(s, 0.1f), {{0.89000001f, -1.88f, 0.395000003f},
                                           {0.792662364f, -1.79419418f, 0.351028148f},
                                           {0.76706491f, -1.78483901f, 0.28720922f}});
}

// Golden values: the trajectories torch.optim 1.13 (Debian's python3-torch, float32, one thread)
// computes for the cases above, printed by tests/trainer/golden_optim.py. Our float32 loops follow
// PyTorch's operation order, so they agree to about one rounding step: 3e-7 is 2.5 ulp at 1.0.
struct GoldenCase {
  const char* name;
  OptimizerSpec spec;
  float lr;
  std::vector<Vec> torch;
};

OptimizerSpec golden_spec(const std::string& kind, void (*set)(OptimizerSpec&)) {
  OptimizerSpec s;
  s.kind = kind;
  set(s);
  return s;
}

TEST(Optimizer, MatchesTorchOptimFloat32Trajectories) {
  const std::vector<GoldenCase> cases{
      {"sgd plain",
       golden_spec("sgd", [](OptimizerSpec& s) { s.momentum = 0.0f; }),
       0.1f,
       {{0.99000001f, -1.98000002f, 0.469999999f},
        {0.949999988f, -1.98000002f, 0.479999989f},
        {0.980000019f, -2.0f, 0.459999979f}}},
      {"sgd momentum wd",
       golden_spec("sgd",
                   [](OptimizerSpec& s) {
                     s.momentum = 0.9f;
                     s.weight_decay = 0.01f;
                   }),
       0.1f,
       {{0.989000022f, -1.97800004f, 0.469500005f},
        {0.938111007f, -1.95622206f, 0.451580495f},
        {0.921372771f, -1.95466566f, 0.415001363f}}},
      {"sgd dampening",
       golden_spec("sgd",
                   [](OptimizerSpec& s) {
                     s.momentum = 0.9f;
                     s.dampening = 0.5f;
                   }),
       0.1f,
       {{0.99000001f, -1.98000002f, 0.469999999f},
        {0.961000025f, -1.96200001f, 0.447999984f},
        {0.949900031f, -1.95580006f, 0.418199986f}}},
      {"sgd nesterov",
       golden_spec("sgd",
                   [](OptimizerSpec& s) {
                     s.momentum = 0.9f;
                     s.nesterov = true;
                   }),
       0.1f,
       {{0.981000006f, -1.96200001f, 0.442999989f},
        {0.896899998f, -1.94580007f, 0.437699974f},
        {0.914210021f, -1.96922004f, 0.385929972f}}},
      {"adagrad",
       golden_spec("adagrad", [](OptimizerSpec& s) { s.eps = 1e-10f; }),
       0.1f,
       {{0.899999976f, -1.89999998f, 0.400000006f},
        {0.802985728f, -1.89999998f, 0.431622773f},
        {0.861820579f, -1.97071064f, 0.37817052f}}},
      {"adagrad lr_decay wd",
       golden_spec("adagrad",
                   [](OptimizerSpec& s) {
                     s.eps = 1e-10f;
                     s.lr_decay = 0.5f;
                     s.weight_decay = 0.1f;
                   }),
       0.1f,
       {{0.899999976f, -1.89999998f, 0.400000006f},
        {0.838276803f, -1.87139618f, 0.411264271f},
        {0.857183218f, -1.87284768f, 0.383176297f}}},
      {"adadelta",
       golden_spec("adadelta",
                   [](OptimizerSpec& s) {
                     s.rho = 0.9f;
                     s.eps = 1e-6f;
                   }),
       1.0f,
       {{0.996839285f, -1.99683809f, 0.496837884f},
        {0.9924891f, -1.99683809f, 0.498320252f},
        {0.996243358f, -2.00007772f, 0.495683074f}}},
      {"rmsprop",
       golden_spec("rmsprop", [](OptimizerSpec& s) { s.momentum = 0.0f; }),
       0.01f,
       {{0.900000095f, -1.9000001f, 0.400000036f},
        {0.802957296f, -1.9000001f, 0.431766063f},
        {0.86199671f, -1.97106516f, 0.377949148f}}},
      {"rmsprop centered momentum",
       golden_spec("rmsprop",
                   [](OptimizerSpec& s) {
                     s.alpha = 0.9f;
                     s.momentum = 0.5f;
                     s.centered = true;
                   }),
       0.01f,
       {{0.966666698f, -1.9666667f, 0.466666669f},
        {0.91678071f, -1.95000005f, 0.460653394f},
        {0.911198139f, -1.96519518f, 0.438528687f}}},
      {"adam",
       golden_spec("adam", [](OptimizerSpec&) {}),
       0.1f,
       {{0.899999976f, -1.89999998f, 0.400000006f},
        {0.8115623f, -1.8329941f, 0.359978139f},
        {0.79389149f, -1.84158087f, 0.299669504f}}},
      {"adam wd",
       golden_spec("adam", [](OptimizerSpec& s) { s.weight_decay = 0.1f; }),
       0.1f,
       {{0.899999976f, -1.89999998f, 0.400000006f},
        {0.805788875f, -1.80753994f, 0.346537828f},
        {0.762998998f, -1.73891187f, 0.276827037f}}},
      {"adam amsgrad",
       golden_spec("adam", [](OptimizerSpec& s) { s.amsgrad = true; }),
       0.1f,
       {{0.899999976f, -1.89999998f, 0.400000006f},
        {0.8115623f, -1.83302772f, 0.359978139f},
        {0.79389149f, -1.84161448f, 0.299669504f}}},
      {"adamw",
       golden_spec("adamw", [](OptimizerSpec& s) { s.weight_decay = 0.1f; }),
       0.1f,
       {{0.889999986f, -1.88f, 0.395000011f},
        {0.792662323f, -1.7941941f, 0.351028144f},
        {0.767064869f, -1.78483891f, 0.287209243f}}},
  };
  for (const GoldenCase& c : cases) {
    const auto got = three_steps(c.spec, c.lr);
    for (size_t s = 0; s < 3; ++s)
      for (size_t i = 0; i < 3; ++i)
        EXPECT_NEAR(got[s][i], c.torch[s][i], 3e-7)
            << c.name << ", step " << s + 1 << ", element " << i;
  }
}

TEST(Optimizer, FrozenParamsAreBitIdenticalForEveryKind) {
  for (const std::string& kind : optimizer_kinds()) {
    OptimizerSpec s = spec_of(kind);
    s.weight_decay = 0.1f;
    s.clip_norm = 0.5f;
    auto opt = make_optimizer(s);
    Vec a{1.0f, 2.0f}, ga{0.5f, -0.5f}, b{0.1f, -0.3f}, gb{1.0f, 1.0f};
    const Vec a0 = a, ga0 = ga, b0 = b;
    std::vector<ParamRef> params{{"a", a.data(), ga.data(), 2, true},
                                 {"b", b.data(), gb.data(), 2}};
    opt->step(params, 0.1f);
    EXPECT_EQ(std::memcmp(a.data(), a0.data(), sizeof(float) * 2), 0) << kind;
    EXPECT_EQ(ga, ga0) << kind << ": a frozen gradient is not clipped either";
    EXPECT_NE(b, b0) << kind << ": the unfrozen parameter moves";
    for (const auto& [name, buf] : opt->state())
      EXPECT_NE(name.rfind("a.", 0), 0u) << kind << ": " << name;
  }
}

TEST(Optimizer, LrMultScalesTheStepAndDecayFalseExemptsFromWeightDecay) {
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.0f;
  s.weight_decay = 0.5f;
  auto opt = make_optimizer(s);
  Vec a{1.0f}, ga{0.2f}, b{1.0f}, gb{0.2f};
  std::vector<ParamRef> params{{"a", a.data(), ga.data(), 1, false, 0.5f},
                               {"b", b.data(), gb.data(), 1, false, 1.0f, false}};
  opt->step(params, 0.1f);
  // a: p - (lr*0.5)*(g + wd*p) = 1 - 0.05*(0.2 + 0.5) = 0.965; b: 1 - 0.1*0.2 = 0.98.
  EXPECT_FLOAT_EQ(a[0], 0.965f);
  EXPECT_FLOAT_EQ(b[0], 0.98f);
}

TEST(Optimizer, StepDoesNotAllocateAfterTheFirst) {
  for (const std::string& kind : optimizer_kinds()) {
    OptimizerSpec s = spec_of(kind);
    s.clip_norm = 1.0f;
    s.centered = true;
    s.amsgrad = true;
    auto opt = make_optimizer(s);
    Vec a(300, 0.5f), ga(300, 0.1f), b(7, 1.0f), gb(7, -0.2f);
    std::vector<ParamRef> params{{"a", a.data(), ga.data(), 300}, {"b", b.data(), gb.data(), 7}};
    opt->step(params, 0.01f);  // creates the state
    const long before = testing::g_allocations.load();
    for (int t = 0; t < 5; ++t) opt->step(params, 0.01f);
    EXPECT_EQ(testing::g_allocations.load() - before, 0) << kind;
  }
}

TEST(ClipGradNorm, ScalesToTheMaxNormOverAllNonFrozenParams) {
  Vec a{3.0f}, ga{3.0f}, b{0.0f}, gb{4.0f}, c{0.0f}, gc{100.0f};
  std::vector<ParamRef> params{{"a", a.data(), ga.data(), 1},
                               {"b", b.data(), gb.data(), 1},
                               {"c", c.data(), gc.data(), 1, true}};
  const double norm = clip_grad_norm(params, 1.0f);
  EXPECT_DOUBLE_EQ(norm, 5.0);  // sqrt(3^2 + 4^2); the frozen 100 does not count
  // coef = 1 / (5 + 1e-6)
  EXPECT_NEAR(ga[0], 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(gb[0], 4.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_EQ(gc[0], 100.0f);
  // Below the limit nothing changes.
  Vec gd{0.3f, 0.4f}, d{0, 0};
  std::vector<ParamRef> small{{"d", d.data(), gd.data(), 2}};
  EXPECT_NEAR(clip_grad_norm(small, 1.0f), 0.5, 1e-7);
  EXPECT_EQ(gd, (Vec{0.3f, 0.4f}));
}

TEST(ClipGradNorm, ClippingInsideStepChangesTheUpdate) {
  // SGD with clip_norm 1: g = {3, 4} becomes g/(5+1e-6); p <- p - 0.1*g.
  OptimizerSpec s = spec_of("sgd");
  s.momentum = 0.0f;
  s.clip_norm = 1.0f;
  auto opt = make_optimizer(s);
  Vec p{0.0f, 0.0f}, g{3.0f, 4.0f};
  std::vector<ParamRef> params{{"p", p.data(), g.data(), 2}};
  opt->step(params, 0.1f);
  EXPECT_NEAR(p[0], -0.06f, 1e-7);
  EXPECT_NEAR(p[1], -0.08f, 1e-7);
}

TEST(Optimizer, StateRoundTripContinuesBitExactly) {
  for (const std::string& kind : optimizer_kinds()) {
    OptimizerSpec s = spec_of(kind);
    s.centered = true;
    s.amsgrad = true;
    s.weight_decay = 0.01f;
    auto a = make_optimizer(s);
    Vec pa = kP0, g(3);
    std::vector<ParamRef> params{{"layer.w", pa.data(), g.data(), 3}};
    for (int t = 0; t < 2; ++t) {
      g = kGrads[t];
      a->step(params, 0.05f);
    }
    auto b = make_optimizer(s);
    b->load_state(a->state());
    EXPECT_EQ(b->steps(), 2) << kind;
    Vec pb = pa, gb = kGrads[2];
    std::vector<ParamRef> params_b{{"layer.w", pb.data(), gb.data(), 3}};
    g = kGrads[2];
    a->step(params, 0.05f);
    b->step(params_b, 0.05f);
    EXPECT_EQ(std::memcmp(pa.data(), pb.data(), sizeof(float) * 3), 0) << kind;
  }
}

TEST(Optimizer, StepCountEncodingSurvivesLargeCounts) {
  auto opt = make_optimizer(spec_of("adam"));
  OptimizerState st = opt->state();
  // __steps__ = 5 + 3 * 2^24 = 50331653
  st = {{"__steps__", {5.0f, 3.0f}}};
  opt->load_state(st);
  EXPECT_EQ(opt->steps(), 50331653);
  EXPECT_EQ(opt->state().back().second, (Vec{5.0f, 3.0f}));
}

TEST(Optimizer, StateOfAnotherKindIsAConfigError) {
  auto adam = make_optimizer(spec_of("adam"));
  Vec p{1.0f}, g{1.0f};
  std::vector<ParamRef> params{{"w", p.data(), g.data(), 1}};
  adam->step(params, 0.1f);
  auto sgd = make_optimizer(spec_of("sgd"));
  EXPECT_THROW(sgd->load_state(adam->state()), ConfigError);
  EXPECT_THROW(sgd->load_state({}), ConfigError);  // no __steps__
}

TEST(Optimizer, SizeMismatchWithStoredStateIsAConfigError) {
  auto opt = make_optimizer(spec_of("adam"));
  Vec p{1.0f, 2.0f}, g{1.0f, 1.0f};
  std::vector<ParamRef> params{{"w", p.data(), g.data(), 2}};
  opt->step(params, 0.1f);
  params[0].size = 1;
  EXPECT_THROW(opt->step(params, 0.1f), ConfigError);
}

TEST(Adam, ParamUnfrozenLaterStartsItsOwnBiasCorrection) {
  // PyTorch keeps the step count per parameter: the first update of b, at the optimizer's second
  // step, is a first Adam step: p - lr * g/|g| (up to eps).
  auto opt = make_optimizer(spec_of("adam"));
  Vec a{0.0f}, ga{1.0f}, b{1.0f}, gb{0.25f};
  std::vector<ParamRef> params{{"a", a.data(), ga.data(), 1}, {"b", b.data(), gb.data(), 1, true}};
  opt->step(params, 0.1f);
  params[1].frozen = false;
  opt->step(params, 0.1f);
  EXPECT_NEAR(b[0], 0.9f, 1e-6);
}

TEST(MakeOptimizer, UnknownKindListsTheValidOnes) {
  try {
    make_optimizer(spec_of("lion"));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("lion"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("sgd, adagrad, adadelta, rmsprop, adam, adamw"));
  }
}

TEST(MakeOptimizer, RefusesNesterovWithoutMomentumAndBadBetas) {
  OptimizerSpec s = spec_of("sgd");
  s.nesterov = true;
  s.momentum = 0.0f;
  EXPECT_THROW(make_optimizer(s), ConfigError);
  OptimizerSpec a = spec_of("adam");
  a.beta2 = 1.0f;
  EXPECT_THROW(make_optimizer(a), ConfigError);
}

TEST(Optimizer, ResultDoesNotDependOnTheThreadCount) {
  // Large enough to take the OpenMP path in every kind.
  const int64_t n = 70001;  // above the parallel threshold (65536), odd: the last block has a tail
  for (const std::string& kind : optimizer_kinds()) {
    const int saved_threads = omp_get_max_threads();
  auto run = [&](int threads) {
      omp_set_num_threads(threads);
      OptimizerSpec s = spec_of(kind);
      s.weight_decay = 0.01f;
      s.clip_norm = 10.0f;
      auto opt = make_optimizer(s);
      Vec p(n), g(n);
      for (int64_t i = 0; i < n; ++i) p[i] = std::sin(0.001f * static_cast<float>(i));
      std::vector<ParamRef> params{{"w", p.data(), g.data(), n}};
      for (int t = 0; t < 3; ++t) {
        for (int64_t i = 0; i < n; ++i) g[i] = std::cos(0.0007f * static_cast<float>(i * (t + 1)));
        opt->step(params, 0.01f);
      }
      return p;
    };
    const Vec one = run(1), two = run(2);
    omp_set_num_threads(saved_threads);
    EXPECT_EQ(std::memcmp(one.data(), two.data(), sizeof(float) * n), 0) << kind;
  }
}

}  // namespace
}  // namespace kestrel::trainer
