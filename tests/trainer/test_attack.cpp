// Tests of trainer/attack: FGSM against its closed form on linear models, PGD's projection onto the
// epsilon ball and the valid range (L-inf and L2), the three sanity checks on deliberately masked
// models (and their silence on a normal one), adversarial training, and the YAML sections.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "common/error.hpp"
#include "trainer/attack.hpp"
#include "trainer/loss.hpp"
#include "trainer/model.hpp"
#include "trainer/train.hpp"

namespace kestrel::trainer {
namespace {

// Pixels uniform in [0, 1] with a share of exact 0s and 1s (as in real images), normalized by
// (mean, stddev) per channel.
std::vector<float> pixels(int n, int64_t ss, SplitMix64& rng) {
  std::vector<float> p(static_cast<size_t>(n) * ss);
  for (auto& v : p) {
    const double u = rng.uniform();
    v = u < 0.2 ? 0.0f : u > 0.8 ? 1.0f : static_cast<float>(rng.uniform());
  }
  return p;
}

std::vector<float> normalize(const std::vector<float>& p, const InputDomain& d, int64_t ss) {
  std::vector<float> x(p.size());
  const int64_t per = ss / static_cast<int64_t>(d.mean.size());
  for (size_t k = 0; k < p.size(); ++k) {
    const int64_t g = (static_cast<int64_t>(k) % ss) / per;
    x[k] = (p[k] - d.mean[g]) / d.stddev[g];
  }
  return x;
}

// Back to pixel units (double, for checks).
double to_pixel(float x, const InputDomain& d, int64_t ss, size_t k) {
  const int64_t per = ss / static_cast<int64_t>(d.mean.size());
  const int64_t g = (static_cast<int64_t>(k) % ss) / per;
  return static_cast<double>(x) * d.stddev[g] + d.mean[g];
}

void set_linear(Model& m, const std::string& name, const std::vector<float>& w, const std::vector<float>& b) {
  m.set_tensor(name + ".weight", w);
  m.set_tensor(name + ".bias", b);
}

// ---------------------------------------------------------------- closed forms

TEST(Attack, FgsmOnLinearModelEqualsClosedForm) {
  const int k = 3, n = 32;
  const Shape in{2, 3, 3};
  const int64_t ss = in.size();
  Graph g(in);
  g.add(ops::linear(k), g.input(), "fc");
  auto be = make_cpu_backend(1);
  Model model(g, *be, 1);
  SplitMix64 rng(7);
  std::vector<float> w(static_cast<size_t>(k) * ss), b(k);
  for (auto& v : w) v = static_cast<float>(rng.uniform() * 2 - 1);
  for (auto& v : b) v = static_cast<float>(rng.uniform() - 0.5);
  set_linear(model, "fc", w, b);
  Loss loss(LossSpec{}, *be, k);
  ModelTarget target(model, loss);

  InputDomain dom;
  dom.mean = {0.3f, 0.6f};
  dom.stddev = {0.2f, 0.5f};
  const std::vector<float> p = pixels(n, ss, rng);
  const std::vector<float> x0 = normalize(p, dom, ss);
  std::vector<int32_t> y(n);
  for (auto& v : y) v = static_cast<int32_t>(rng.below(k));

  const double eps = 0.1;
  std::vector<float> x = x0;
  attack_batch(AttackSpec{AttackKind::kFgsm, eps, 1}, target, dom, x.data(), y.data(), n);

  // Closed form: d CE / dx = W^T (softmax(Wx + b) - onehot(y)); FGSM moves every pixel by eps in
  // the sign of that gradient (d/dpixel has the same sign), then clips to [0, 1].
  int moved = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<double> z(k), q(k);
    for (int c = 0; c < k; ++c) {
      z[c] = b[c];
      for (int64_t e = 0; e < ss; ++e) z[c] += static_cast<double>(w[c * ss + e]) * x0[i * ss + e];
    }
    const double zmax = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (int c = 0; c < k; ++c) sum += q[c] = std::exp(z[c] - zmax);
    for (int c = 0; c < k; ++c) q[c] = q[c] / sum - (c == y[i] ? 1.0 : 0.0);
    for (int64_t e = 0; e < ss; ++e) {
      double grad = 0;
      for (int c = 0; c < k; ++c) grad += w[c * ss + e] * q[c];
      const size_t at = static_cast<size_t>(i) * ss + e;
      const double expect = std::clamp(p[at] + eps * ((grad > 0) - (grad < 0)), 0.0, 1.0);
      const double got = to_pixel(x[at], dom, ss, at);
      ASSERT_NEAR(got, expect, 1e-5) << "sample " << i << " element " << e << " gradient " << grad;
      moved += std::fabs(got - p[at]) > 0.05;
    }
  }
  EXPECT_GT(moved, n * ss / 2);  // most pixels are interior: the attack did move them
}

// For a two-class linear model without range limits, FGSM and PGD are both optimal in the L-inf
// ball: a sample survives exactly when its margin exceeds eps * sum_e |w1 - w0|_e / stddev_e.
TEST(Attack, FgsmAndPgdOnBinaryLinearModelLeaveClosedFormAccuracy) {
  const int n = 600;
  const Shape in{1, 1, 12};
  const int64_t ss = in.size();
  Graph g(in);
  g.add(ops::linear(2), g.input(), "fc");
  auto be = make_cpu_backend(1);
  Model model(g, *be, 1);
  SplitMix64 rng(11);
  std::vector<float> w(2 * ss), b = {0.1f, -0.1f};
  for (auto& v : w) v = static_cast<float>(rng.uniform() * 2 - 1);
  set_linear(model, "fc", w, b);
  Loss loss(LossSpec{}, *be, 2);
  ModelTarget target(model, loss);

  InputDomain dom = InputDomain::unbounded();
  dom.mean = {0.5f};
  dom.stddev = {0.25f};
  Dataset data;
  data.n = n;
  data.c = 1, data.h = 1, data.w = static_cast<int>(ss);
  data.num_classes = 2;
  data.x.resize(static_cast<size_t>(n) * ss);
  data.y.resize(n);
  for (auto& v : data.x) v = static_cast<float>(2 * rng.uniform() - 1);
  for (auto& v : data.y) v = static_cast<int32_t>(rng.below(2));

  double l1 = 0;
  for (int64_t e = 0; e < ss; ++e) l1 += std::fabs(w[ss + e] - w[e]) / dom.stddev[0];
  RobustnessSpec spec;
  spec.epsilons = {0.02, 0.05};
  spec.attacks = {AttackSpec{AttackKind::kFgsm, 0, 1}, AttackSpec{AttackKind::kPgdLinf, 0, 20}};
  const RobustnessReport rep = evaluate_robustness(spec, target, dom, data, 64);
  for (double eps : spec.epsilons) {
    int64_t survive = 0;
    for (int i = 0; i < n; ++i) {
      double m = b[1] - b[0];
      for (int64_t e = 0; e < ss; ++e) m += static_cast<double>(w[ss + e] - w[e]) * data.x[i * ss + e];
      if (data.y[i] == 0) m = -m;
      survive += m - eps * l1 > 0;
    }
    const double expect = static_cast<double>(survive) / n;
    EXPECT_NEAR(rep.robust_accuracy("fgsm", eps), expect, 1.5 / n) << "eps " << eps;
    EXPECT_NEAR(rep.robust_accuracy("pgd", eps), expect, 1.5 / n) << "eps " << eps;
  }
  EXPECT_LT(rep.robust_accuracy("fgsm", 0.05), rep.clean_accuracy - 0.1);  // the attack bites
  EXPECT_TRUE(rep.flags.empty()) << rep.to_json(2);
}

// ---------------------------------------------------------------- projection

struct ProjectionCase {
  AttackKind kind;
  bool random_start;
};

class Projection : public ::testing::TestWithParam<ProjectionCase> {};

TEST_P(Projection, KeepsEveryInputInsideTheBallAndTheValidRange) {
  const ProjectionCase pc = GetParam();
  const int n = 40;
  const Shape in{3, 4, 4};
  const int64_t ss = in.size();
  Graph g(in);
  int h = g.add(ops::linear(16), g.input(), "fc1");
  h = g.add(ops::relu(), h);
  g.add(ops::linear(5), h, "fc2");
  auto be = make_cpu_backend(1);
  Model model(g, *be, 3);
  Loss loss(LossSpec{}, *be, 5);
  ModelTarget target(model, loss);
  InputDomain dom;
  dom.mean = {0.2f, 0.5f, 0.7f};
  dom.stddev = {0.3f, 0.1f, 0.45f};
  SplitMix64 rng(5);
  const std::vector<float> p = pixels(n, ss, rng);
  const std::vector<float> x0 = normalize(p, dom, ss);
  std::vector<int32_t> y(n);
  for (auto& v : y) v = static_cast<int32_t>(rng.below(5));

  const bool l2 = pc.kind == AttackKind::kPgdL2;
  const double eps = l2 ? 0.8 : 0.1;
  // A step as large as epsilon and many steps: every iterate overshoots, so the projection and
  // the clipping do all the work.
  AttackSpec spec{pc.kind, eps, 15, eps, pc.random_start, 42};
  std::vector<float> x = x0;
  attack_batch(spec, target, dom, x.data(), y.data(), n);
  double largest = 0;
  for (int i = 0; i < n; ++i) {
    double linf = 0, l2sq = 0;
    for (int64_t e = 0; e < ss; ++e) {
      const size_t k = static_cast<size_t>(i) * ss + e;
      const double q = to_pixel(x[k], dom, ss, k);
      ASSERT_GE(q, -1e-6) << "sample " << i << " element " << e;
      ASSERT_LE(q, 1 + 1e-6) << "sample " << i << " element " << e;
      const double d = q - p[k];
      linf = std::max(linf, std::fabs(d));
      l2sq += d * d;
    }
    const double norm = l2 ? std::sqrt(l2sq) : linf;
    ASSERT_LE(norm, eps * (1 + 1e-5) + 1e-6) << "sample " << i;
    largest = std::max(largest, norm);
  }
  EXPECT_GT(largest, 0.9 * eps);  // the attack reached the edge of the ball

  // Epsilon 0 leaves the inputs bit-identical.
  x = x0;
  spec.epsilon = 0.0;
  attack_batch(spec, target, dom, x.data(), y.data(), n);
  EXPECT_EQ(0, std::memcmp(x.data(), x0.data(), x.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(Attack, Projection,
                         ::testing::Values(ProjectionCase{AttackKind::kPgdLinf, false},
                                           ProjectionCase{AttackKind::kPgdLinf, true},
                                           ProjectionCase{AttackKind::kPgdL2, false},
                                           ProjectionCase{AttackKind::kPgdL2, true},
                                           ProjectionCase{AttackKind::kFgsm, true}),
                         [](const auto& info) {
                           return attack_name(info.param.kind) + (info.param.random_start ? "_random_start" : "");
                         });

// ---------------------------------------------------------------- sanity checks

// One feature x in [0.4, 0.6]; class 1 when x > 0.5, a share of labels flipped. The model is
// the linear classifier 20 x - 10 (exact, so every sample lies within 0.1 of its boundary).
struct Line {
  Dataset data;
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  std::unique_ptr<Model> model;
  std::unique_ptr<Loss> loss;
  std::unique_ptr<ModelTarget> target;

  explicit Line(double flip, int n = 400) {
    data.n = n;
    data.c = data.h = data.w = 1;
    data.num_classes = 2;
    SplitMix64 rng(3);
    for (int i = 0; i < n; ++i) {
      const float x = static_cast<float>(0.4 + 0.2 * (i + 0.5) / n);
      data.x.push_back(x);
      const int label = x > 0.5f;
      data.y.push_back(rng.uniform() < flip ? 1 - label : label);
    }
    Graph g({1, 1, 1});
    g.add(ops::linear(2), g.input(), "fc");
    model = std::make_unique<Model>(g, *be, 1);
    model->set_tensor("fc.weight", {-10.0f, 10.0f});
    model->set_tensor("fc.bias", {5.0f, -5.0f});
    loss = std::make_unique<Loss>(LossSpec{}, *be, 2);
    target = std::make_unique<ModelTarget>(*model, *loss);
  }
};

RobustnessSpec line_spec(std::vector<AttackSpec> attacks) {
  RobustnessSpec s;
  s.epsilons = {0.02, 0.05, 0.1};
  s.attacks = std::move(attacks);
  return s;
}

bool has_flag(const RobustnessReport& r, const std::string& check) {
  return std::any_of(r.flags.begin(), r.flags.end(), [&](const SanityFlag& f) { return f.check == check; });
}

// A non-differentiable quantizing layer in front of the model: it sees round(x) (binarization),
// whose gradient is zero almost everywhere, so gradient steps from the clean input never move.
class Binarized : public AttackTarget {
 public:
  explicit Binarized(AttackTarget& inner) : inner_(inner) {}
  int64_t sample_size() const override { return inner_.sample_size(); }
  int classes() const override { return inner_.classes(); }
  void logits(const float* x, int n, float* out) override {
    std::vector<float> q(x, x + static_cast<size_t>(n) * sample_size());
    for (auto& v : q) v = v > 0.5f ? 1.0f : 0.0f;
    inner_.logits(q.data(), n, out);
  }
  void input_gradient(const float*, const int32_t*, int n, float* grad) override {
    std::fill(grad, grad + static_cast<size_t>(n) * sample_size(), 0.0f);
  }

 private:
  AttackTarget& inner_;
};

// A randomized model: Gaussian noise on its input at every call (a "random defense").
class Noisy : public AttackTarget {
 public:
  explicit Noisy(AttackTarget& inner) : inner_(inner) {}
  int64_t sample_size() const override { return inner_.sample_size(); }
  int classes() const override { return inner_.classes(); }
  void logits(const float* x, int n, float* out) override { inner_.logits(noisy(x, n).data(), n, out); }
  void input_gradient(const float* x, const int32_t* y, int n, float* grad) override {
    inner_.input_gradient(noisy(x, n).data(), y, n, grad);
  }

 private:
  std::vector<float> noisy(const float* x, int n) {
    std::vector<float> v(x, x + static_cast<size_t>(n) * sample_size());
    for (auto& e : v) e += static_cast<float>(0.05 * std::sqrt(-2 * std::log(1 - rng_.uniform())) *
                                              std::cos(6.283185307 * rng_.uniform()));
    return v;
  }
  AttackTarget& inner_;
  SplitMix64 rng_{9};
};

// A broken backward pass: the gradient points the wrong way (as a sign error in a custom layer).
class Reversed : public AttackTarget {
 public:
  explicit Reversed(AttackTarget& inner) : inner_(inner) {}
  int64_t sample_size() const override { return inner_.sample_size(); }
  int classes() const override { return inner_.classes(); }
  void logits(const float* x, int n, float* out) override { inner_.logits(x, n, out); }
  void input_gradient(const float* x, const int32_t* y, int n, float* grad) override {
    inner_.input_gradient(x, y, n, grad);
    for (size_t k = 0; k < static_cast<size_t>(n) * sample_size(); ++k) grad[k] = -grad[k];
  }

 private:
  AttackTarget& inner_;
};

const AttackSpec kFgsm{AttackKind::kFgsm, 0, 1};
const AttackSpec kFgsmRs{AttackKind::kFgsm, 0, 1, 0.0, true, 1};
const AttackSpec kPgd{AttackKind::kPgdLinf, 0, 10};
const AttackSpec kPgdRs{AttackKind::kPgdLinf, 0, 10, 0.0, true, 1};
const AttackSpec kPgdL2{AttackKind::kPgdL2, 0, 10};

TEST(SanityChecks, DoNotFireOnANormalModel) {
  for (double flip : {0.0, 0.2}) {
    Line line(flip);
    const RobustnessReport r = evaluate_robustness(line_spec({kFgsm, kFgsmRs, kPgd, kPgdRs, kPgdL2}), *line.target,
                                                   InputDomain{}, line.data, 64);
    EXPECT_TRUE(r.flags.empty()) << r.to_json(2);
    EXPECT_LT(r.robust_accuracy("pgd", 0.1), 0.25);  // the line is attackable
    EXPECT_NEAR(r.robust_accuracy("pgd", 0.0), r.clean_accuracy, 0.0);
  }
}

TEST(SanityChecks, PgdWeakerThanFgsmFiresOnABinarizingLayer) {
  Line line(0.0);
  Binarized masked(*line.target);
  const RobustnessReport r = evaluate_robustness(line_spec({kFgsmRs, kPgd}), masked, InputDomain{}, line.data, 64);
  // PGD from the clean input sees a zero gradient and never moves; FGSM's random start does.
  EXPECT_DOUBLE_EQ(r.robust_accuracy("pgd", 0.1), r.clean_accuracy);
  EXPECT_LT(r.robust_accuracy("fgsm", 0.1), r.clean_accuracy - 0.15);
  EXPECT_TRUE(has_flag(r, "pgd_vs_fgsm")) << r.to_json(2);
  EXPECT_FALSE(has_flag(r, "epsilon_zero"));
}

TEST(SanityChecks, EpsilonZeroFiresOnARandomizedModel) {
  Line line(0.0);
  Noisy masked(*line.target);
  const RobustnessReport r = evaluate_robustness(line_spec({kFgsm, kPgd}), masked, InputDomain{}, line.data, 64);
  EXPECT_TRUE(has_flag(r, "epsilon_zero")) << r.to_json(2);
}

TEST(SanityChecks, MonotoneFiresWhenTheGradientPointsTheWrongWay) {
  Line line(0.2);
  Reversed masked(*line.target);
  const RobustnessReport r = evaluate_robustness(line_spec({kFgsm, kPgd}), masked, InputDomain{}, line.data, 64);
  EXPECT_GT(r.robust_accuracy("fgsm", 0.1), r.clean_accuracy + 0.1);  // "robust" beats clean
  EXPECT_TRUE(has_flag(r, "monotone")) << r.to_json(2);
}

TEST(SanityChecks, CheckSanityReadsTheReportAlone) {
  RobustnessReport r;
  r.n = 10000;
  r.clean_accuracy = 0.9;
  auto add = [&](const std::string& a, double eps, double acc) {
    AttackResult x;
    x.attack = a;
    x.epsilon = eps;
    x.accuracy = acc;
    x.n = r.n;
    x.correct = std::llround(acc * r.n);
    r.results.push_back(x);
  };
  add("fgsm", 0.0, 0.9);
  add("fgsm", 0.05, 0.5);
  add("fgsm", 0.1, 0.3);
  add("pgd", 0.05, 0.45);
  add("pgd", 0.1, 0.2);
  EXPECT_TRUE(check_sanity(r).empty());
  r.results[2].accuracy = 0.6;  // rises from 0.5 at 0.05 to 0.6 at 0.1
  auto f = check_sanity(r);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].check, "monotone");
  r.results[2].accuracy = 0.1;  // now PGD (0.2) is weaker than FGSM (0.1) at 0.1
  f = check_sanity(r);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].check, "pgd_vs_fgsm");
  EXPECT_TRUE(check_sanity(r, 0.2).empty());  // within a wide noise margin
  r.results[0].correct -= 1;  // one prediction differs at epsilon 0
  f = check_sanity(r, 0.2);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].check, "epsilon_zero");
}

// ---------------------------------------------------------------- adversarial training

// Two kinds of features (after Tsipras et al. 2019): one robust feature, far from its decision
// boundary but right only 90% of the time, and 40 weak features, each shifted by only 0.05 but
// together almost perfectly predictive. An epsilon of 0.1 erases the weak ones, so a standard
// model (which leans on them) collapses under attack while adversarial training learns the
// robust feature.
Dataset robust_vs_weak(int n, uint64_t seed) {
  const int d = 41;
  Dataset s;
  s.n = n;
  s.c = 1, s.h = 1, s.w = d;
  s.num_classes = 2;
  SplitMix64 rng(seed);
  for (int i = 0; i < n; ++i) {
    const int y = static_cast<int>(rng.below(2));
    const double sgn = y ? 1.0 : -1.0;
    s.y.push_back(y);
    s.x.push_back(static_cast<float>(0.5 + 0.35 * sgn * (rng.uniform() < 0.9 ? 1 : -1)));
    for (int j = 1; j < d; ++j) {
      const double g = std::sqrt(-2 * std::log(1 - rng.uniform())) * std::cos(6.283185307 * rng.uniform());
      s.x.push_back(static_cast<float>(std::clamp(0.5 + 0.05 * sgn + 0.1 * g, 0.0, 1.0)));
    }
  }
  return s;
}

TrainResult train_line(bool adversarial) {
  TrainSpec spec;
  Graph g({1, 1, 41});
  int h = g.add(ops::linear(16), g.input(), "fc1");
  h = g.add(ops::relu(), h);
  g.add(ops::linear(2), h, "fc2");
  spec.model = g;
  spec.epochs = 20;
  spec.batch_size = 32;
  spec.lr = 0.01f;
  spec.threads = 1;
  spec.seed = 4;
  spec.adversarial.enabled = adversarial;
  spec.adversarial.attack = AttackSpec{AttackKind::kPgdLinf, 0.1, 5, 0.0, true, 1};
  spec.robustness.enabled = true;
  spec.robustness.epsilons = {0.1};
  spec.robustness.attacks = {kFgsm, kPgd};
  TrainData data;
  data.train = robust_vs_weak(2000, 1);
  data.test = robust_vs_weak(500, 2);
  return train(spec, data);
}

TEST(AdversarialTraining, RaisesRobustAccuracy) {
  const TrainResult plain = train_line(false);
  const TrainResult adv = train_line(true);
  ASSERT_TRUE(plain.robustness && adv.robustness);
  const double plain_pgd = plain.robustness->robust_accuracy("pgd", 0.1);
  const double adv_pgd = adv.robustness->robust_accuracy("pgd", 0.1);
  EXPECT_GT(plain.robustness->clean_accuracy, 0.95);
  EXPECT_LT(plain_pgd, 0.5);
  EXPECT_GT(adv_pgd, 0.8);
  EXPECT_GT(adv_pgd, plain_pgd + 0.3);
  EXPECT_TRUE(plain.robustness->flags.empty()) << plain.robustness->to_json(2);
  EXPECT_TRUE(adv.robustness->flags.empty()) << adv.robustness->to_json(2);
  std::printf("clean %.3f -> %.3f, PGD-10 at 0.1 %.3f -> %.3f\n", plain.robustness->clean_accuracy,
              adv.robustness->clean_accuracy, plain_pgd, adv_pgd);
}

TEST(AdversarialTraining, EpsilonRampsOverWarmupEpochs) {
  AdversarialTraining a;
  a.attack.epsilon = 0.2;
  EXPECT_DOUBLE_EQ(a.epsilon_at(0.0), 0.2);
  a.warmup_epochs = 4;
  EXPECT_DOUBLE_EQ(a.epsilon_at(0.0), 0.0);
  EXPECT_DOUBLE_EQ(a.epsilon_at(1.0), 0.05);
  EXPECT_DOUBLE_EQ(a.epsilon_at(9.0), 0.2);
}

// ---------------------------------------------------------------- YAML

TEST(AttackYaml, TrainingFileSectionsAreRead) {
  const YAML::Node y = YAML::Load(R"(
model: {input: [4], nodes: [{op: linear, out: 2}]}
adversarial:
  attack: pgd
  epsilon: 0.2
  steps: 7
  warmup_epochs: 2
robustness:
  epsilons: [0.05, 0.1]
  attacks: [fgsm, {kind: pgd_l2, steps: 20, random_start: true}]
  set: validation
  max_samples: 500
)");
  const TrainSpec s = parse_train_spec(y, "t.yaml");
  EXPECT_TRUE(s.adversarial.enabled);
  EXPECT_EQ(s.adversarial.attack.kind, AttackKind::kPgdLinf);
  EXPECT_DOUBLE_EQ(s.adversarial.attack.epsilon, 0.2);
  EXPECT_EQ(s.adversarial.attack.steps, 7);
  EXPECT_TRUE(s.adversarial.attack.random_start);
  EXPECT_EQ(s.adversarial.warmup_epochs, 2);
  EXPECT_TRUE(s.robustness.enabled);
  ASSERT_EQ(s.robustness.attacks.size(), 2u);
  EXPECT_EQ(s.robustness.attacks[0].kind, AttackKind::kFgsm);
  EXPECT_EQ(s.robustness.attacks[1].kind, AttackKind::kPgdL2);
  EXPECT_EQ(s.robustness.attacks[1].steps, 20);
  EXPECT_TRUE(s.robustness.attacks[1].random_start);
  EXPECT_EQ(s.robustness.set, "validation");
  EXPECT_EQ(s.robustness.max_samples, 500);
}

TEST(AttackYaml, ErrorsNameFileLineAndKey) {
  auto message = [](const std::string& text) {
    try {
      parse_train_spec(YAML::Load(text), "t.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "model: {input: [4], nodes: [{op: linear, out: 2}]}\n";
  EXPECT_NE(message(head + "adversarial:\n  epsilonn: 0.1\n").find("t.yaml:3: unknown key 'adversarial.epsilonn'"),
            std::string::npos);
  EXPECT_NE(message(head + "robustness:\n  attacks: [fgsm, cw]\n").find("t.yaml:3"), std::string::npos);
  EXPECT_NE(message(head + "robustness:\n  attacks: [fgsm, cw]\n").find("'cw'"), std::string::npos);
  EXPECT_NE(message(head + "adversarial:\n  epsilon: -1\n").find("t.yaml:3"), std::string::npos);
  EXPECT_NE(message(head + "robustness:\n  set: train\n").find("set must be test or validation"), std::string::npos);
}

}  // namespace
}  // namespace kestrel::trainer
