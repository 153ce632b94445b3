// FGSM and PGD attacks in pixel units, robustness evaluation with its sanity checks, adversarial
// training of a batch, and the readers of the `adversarial:` and `robustness:` sections.
#include "trainer/attack.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include "common/error.hpp"

namespace kestrel::trainer {
namespace {

using Clock = std::chrono::steady_clock;

// Per-element view of an InputDomain for samples of ss floats: the pixel size of one normalized
// unit (stddev) and the valid range in normalized units.
struct Geometry {
  std::vector<float> scale, inv, lo, hi;
};

Geometry geometry(const InputDomain& d, int64_t ss) {
  Geometry g;
  g.scale.assign(static_cast<size_t>(ss), 1.0f);
  std::vector<float> mean(static_cast<size_t>(ss), 0.0f);
  if (!d.mean.empty()) {
    const int64_t groups = static_cast<int64_t>(d.mean.size());
    if (d.stddev.size() != d.mean.size() || groups < 1 || ss % groups != 0)
      throw ConfigError("input domain has " + std::to_string(groups) + " statistics; samples of " +
                        std::to_string(ss) + " values need one per channel or per feature");
    const int64_t per = ss / groups;
    for (int64_t e = 0; e < ss; ++e) {
      mean[e] = d.mean[e / per];
      g.scale[e] = d.stddev[e / per];
    }
  }
  g.inv.resize(g.scale.size());
  g.lo.resize(g.scale.size());
  g.hi.resize(g.scale.size());
  for (size_t e = 0; e < g.scale.size(); ++e) {
    g.inv[e] = 1.0f / g.scale[e];
    g.lo[e] = std::isfinite(d.lo) ? (d.lo - mean[e]) / g.scale[e] : -std::numeric_limits<float>::infinity();
    g.hi[e] = std::isfinite(d.hi) ? (d.hi - mean[e]) / g.scale[e] : std::numeric_limits<float>::infinity();
  }
  return g;
}

// Standard normal draw (Box-Muller) from the portable generator.
double normal(SplitMix64& rng) {
  const double u1 = 1.0 - rng.uniform();  // (0, 1]
  const double u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

bool same_eps(double a, double b) { return std::fabs(a - b) <= 1e-9; }

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
  return buf;
}

// ---- YAML helpers (the same conventions as trainer/train.cpp's readers)

std::string at(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line < 0 ? file : file + ":" + std::to_string(m.line + 1);
}

void check_keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& file,
                const std::string& section) {
  if (!map.IsMap()) throw ConfigError(at(file, map) + ": section '" + section + "' must be a map");
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) throw ConfigError(at(file, kv.first) + ": unknown key '" + section + "." + k + "'");
  }
}

template <typename T>
void read(const YAML::Node& map, const char* key, T& out, const std::string& file, const std::string& section) {
  const YAML::Node v = map[key];
  if (!v) return;
  try {
    out = v.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(at(file, v) + ": key '" + section + "." + key + "': cannot read '" + YAML::Dump(v) + "'");
  }
}

AttackKind kind_at(const YAML::Node& v, const std::string& file, const std::string& key) {
  try {
    return parse_attack_kind(v.as<std::string>());
  } catch (const YAML::Exception&) {
    throw ConfigError(at(file, v) + ": key '" + key + "': cannot read '" + YAML::Dump(v) + "'");
  } catch (const ConfigError& e) {
    throw ConfigError(at(file, v) + ": key '" + key + "': " + e.what());
  }
}

}  // namespace

// ---------------------------------------------------------------- domain and names

InputDomain InputDomain::pixels(const Normalizer& norm) {
  InputDomain d;
  d.mean = norm.mean;
  d.stddev = norm.stddev;
  return d;
}

InputDomain InputDomain::unbounded() {
  InputDomain d;
  d.lo = -std::numeric_limits<float>::infinity();
  d.hi = std::numeric_limits<float>::infinity();
  return d;
}

std::string attack_name(AttackKind kind) {
  switch (kind) {
    case AttackKind::kFgsm: return "fgsm";
    case AttackKind::kPgdLinf: return "pgd";
    case AttackKind::kPgdL2: return "pgd_l2";
  }
  return "?";
}

AttackKind parse_attack_kind(const std::string& name) {
  if (name == "fgsm") return AttackKind::kFgsm;
  if (name == "pgd" || name == "pgd_linf") return AttackKind::kPgdLinf;
  if (name == "pgd_l2") return AttackKind::kPgdL2;
  throw ConfigError("attack '" + name + "' is not one of fgsm, pgd, pgd_linf, pgd_l2");
}

double AttackSpec::effective_step_size() const {
  if (step_size > 0.0) return step_size;
  if (kind == AttackKind::kFgsm) return random_start ? 1.25 * epsilon : epsilon;
  return 2.5 * epsilon / std::max(1, steps);
}

void validate(const AttackSpec& s) {
  if (!(s.epsilon >= 0.0) || !std::isfinite(s.epsilon))
    throw ConfigError("attack epsilon must be a finite number >= 0");
  if (s.kind != AttackKind::kFgsm && s.steps < 1) throw ConfigError("attack steps must be >= 1");
  if (!(s.step_size >= 0.0)) throw ConfigError("attack step_size must be >= 0 (0 = default)");
}

// ---------------------------------------------------------------- ModelTarget

ModelTarget::ModelTarget(Model& model, Loss& loss, bool train_mode)
    : model_(model), loss_(loss), train_mode_(train_mode) {}

ModelTarget::~ModelTarget() {
  if (staging_) model_.backend().free(staging_);
}

int64_t ModelTarget::sample_size() const { return model_.graph().input_shape().size(); }
int ModelTarget::classes() const { return static_cast<int>(model_.graph().output_shape().size()); }

const float* ModelTarget::stage(const float* x, int n) {
  Backend& be = model_.backend();
  if (be.is_host()) return x;
  const size_t count = static_cast<size_t>(n) * sample_size();
  if (count > staging_size_) {
    if (staging_) be.free(staging_);
    staging_ = be.alloc(count);
    staging_size_ = count;
  }
  be.upload(staging_, x, count);
  return staging_;
}

void ModelTarget::logits(const float* x, int n, float* out) {
  const float* dev_out = model_.forward(stage(x, n), n, train_mode_);
  model_.backend().download(out, dev_out, static_cast<size_t>(n) * classes());
}

namespace {

// Freezes every trainable parameter of a model for one backward pass and restores the previous
// state when it goes out of scope: an attack wants d loss / d input only, and frozen parameters
// skip their weight-gradient work (about a third of a backward pass). Their gradients read zero
// afterwards; the training step's own backward overwrites them.
class FreezeAll {
 public:
  explicit FreezeAll(Model& m) : m_(m) {
    for (size_t i = 0; i < m.params().size(); ++i)
      if (!m.frozen(i)) {
        m.set_frozen(m.params()[i].name, true);
        thawed_.push_back(i);
      }
  }
  ~FreezeAll() {
    for (size_t i : thawed_) m_.set_frozen(m_.params()[i].name, false);
  }
  FreezeAll(const FreezeAll&) = delete;
  FreezeAll& operator=(const FreezeAll&) = delete;

 private:
  Model& m_;
  std::vector<size_t> thawed_;
};

}  // namespace

void ModelTarget::input_gradient(const float* x, const int32_t* y, int n, float* grad) {
  const float* out = model_.forward(stage(x, n), n, train_mode_);
  loss_.compute(out, y, n, true);
  FreezeAll input_only(model_);
  model_.backward(loss_.grad(), true);
  model_.backend().download(grad, model_.input_grad(), static_cast<size_t>(n) * sample_size());
}

// ---------------------------------------------------------------- attacks

void attack_batch(const AttackSpec& spec, AttackTarget& target, const InputDomain& domain, float* x,
                  const int32_t* y, int n, int64_t batch_offset) {
  validate(spec);
  if (n <= 0) return;
  const int64_t ss = target.sample_size();
  const size_t total = static_cast<size_t>(n) * ss;
  const Geometry g = geometry(domain, ss);
  const float eps = static_cast<float>(spec.epsilon);
  const float alpha = static_cast<float>(spec.effective_step_size());
  const bool l2 = spec.kind == AttackKind::kPgdL2;
  const int steps = spec.kind == AttackKind::kFgsm ? 1 : spec.steps;

  // Per element bounds in normalized units: the epsilon box (L-inf) intersected with the valid
  // range, widened to contain the clean input (an input already outside the range stays put).
  const std::vector<float> x0(x, x + total);
  std::vector<float> lo(total), hi(total);
  for (int i = 0; i < n; ++i) {
    for (int64_t e = 0; e < ss; ++e) {
      const size_t k = static_cast<size_t>(i) * ss + e;
      const float rlo = std::min(g.lo[e], x0[k]), rhi = std::max(g.hi[e], x0[k]);
      lo[k] = l2 ? rlo : std::max(rlo, x0[k] - eps * g.inv[e]);
      hi[k] = l2 ? rhi : std::min(rhi, x0[k] + eps * g.inv[e]);
    }
  }
  // L2: after a step, scale the pixel-space perturbation of each sample back into the ball, then
  // clip to the range. Clipping moves coordinates toward x0, so it never leaves the ball again.
  auto project_l2 = [&](int i) {
    float* xi = x + static_cast<size_t>(i) * ss;
    const float* ci = x0.data() + static_cast<size_t>(i) * ss;
    double norm2 = 0.0;
    for (int64_t e = 0; e < ss; ++e) {
      const double d = static_cast<double>(xi[e] - ci[e]) * g.scale[e];
      norm2 += d * d;
    }
    const double norm = std::sqrt(norm2);
    if (norm > eps) {
      const float k = static_cast<float>(eps / norm);
      for (int64_t e = 0; e < ss; ++e) xi[e] = ci[e] + (xi[e] - ci[e]) * k;
    }
  };
  auto clip = [&] {
    for (size_t k = 0; k < total; ++k) x[k] = std::min(std::max(x[k], lo[k]), hi[k]);
  };

  if (spec.random_start && eps > 0.0f) {
    for (int i = 0; i < n; ++i) {
      SplitMix64 rng(mix_seed(spec.seed, static_cast<uint64_t>(batch_offset + i), 0x5253u));
      float* xi = x + static_cast<size_t>(i) * ss;
      if (!l2) {
        for (int64_t e = 0; e < ss; ++e)
          xi[e] += static_cast<float>((2.0 * rng.uniform() - 1.0) * eps) * g.inv[e];
      } else {
        // Uniform in the L2 ball: a Gaussian direction and radius eps * u^(1/d).
        std::vector<double> dir(static_cast<size_t>(ss));
        double norm2 = 0.0;
        for (auto& v : dir) {
          v = normal(rng);
          norm2 += v * v;
        }
        const double r = eps * std::pow(rng.uniform(), 1.0 / static_cast<double>(ss));
        const double k = norm2 > 0 ? r / std::sqrt(norm2) : 0.0;
        for (int64_t e = 0; e < ss; ++e) xi[e] += static_cast<float>(dir[e] * k) * g.inv[e];
        project_l2(i);
      }
    }
    clip();
  }

  std::vector<float> grad(total);
  for (int t = 0; t < steps; ++t) {
    target.input_gradient(x, y, n, grad.data());
    if (!l2) {
      // Sign of d loss / d pixel = sign of d loss / d x (stddev > 0); a zero gradient stays put.
      for (int i = 0; i < n; ++i)
        for (int64_t e = 0; e < ss; ++e) {
          const size_t k = static_cast<size_t>(i) * ss + e;
          const float s = static_cast<float>((grad[k] > 0.0f) - (grad[k] < 0.0f));
          x[k] += alpha * s * g.inv[e];
        }
    } else {
      for (int i = 0; i < n; ++i) {
        float* xi = x + static_cast<size_t>(i) * ss;
        const float* gi = grad.data() + static_cast<size_t>(i) * ss;
        // d loss / d pixel = (d loss / d x) / stddev; the step is alpha along its unit vector.
        double norm2 = 0.0;
        for (int64_t e = 0; e < ss; ++e) {
          const double gp = static_cast<double>(gi[e]) * g.inv[e];
          norm2 += gp * gp;
        }
        if (!(norm2 > 0.0)) continue;
        const double k = alpha / std::sqrt(norm2);
        for (int64_t e = 0; e < ss; ++e)
          xi[e] += static_cast<float>(gi[e] * g.inv[e] * k) * g.inv[e];
        project_l2(i);
      }
    }
    clip();
  }
}

// ---------------------------------------------------------------- evaluation

double RobustnessReport::robust_accuracy(const std::string& attack, double epsilon) const {
  for (const auto& r : results)
    if (r.attack == attack && same_eps(r.epsilon, epsilon)) return r.accuracy;
  return std::numeric_limits<double>::quiet_NaN();
}

std::string metric_name(const std::string& attack, double epsilon) {
  return "robust_accuracy_" + attack + "_" + fmt_g(epsilon);
}

std::vector<std::pair<std::string, double>> RobustnessReport::metrics() const {
  std::vector<std::pair<std::string, double>> out;
  out.emplace_back("clean_accuracy", clean_accuracy);
  std::set<std::string> seen;
  for (const auto& r : results) {
    std::string name = metric_name(r.attack, r.epsilon);
    if (seen.insert(name).second) out.emplace_back(std::move(name), r.accuracy);
  }
  out.emplace_back("robustness_flags", static_cast<double>(flags.size()));
  return out;
}

std::string RobustnessReport::to_json(int indent) const {
  using nlohmann::json;
  json j;
  j["set"] = set;
  j["n"] = n;
  j["clean_accuracy"] = clean_accuracy;
  j["per_class_accuracy"] = per_class_accuracy;
  j["confusion"] = confusion;
  j["noise"] = noise;
  json rs = json::array();
  for (const auto& r : results) {
    rs.push_back({{"attack", r.attack}, {"epsilon", r.epsilon}, {"steps", r.steps},
                  {"random_start", r.random_start}, {"accuracy", r.accuracy}, {"correct", r.correct},
                  {"n", r.n}, {"flipped", r.flipped}, {"seconds", r.seconds},
                  {"per_class_accuracy", r.per_class_accuracy}, {"confusion", r.confusion}});
  }
  j["results"] = rs;
  json fs = json::array();
  for (const auto& f : flags) fs.push_back({{"check", f.check}, {"message", f.message}});
  j["flags"] = fs;
  return j.dump(indent);
}

void validate(const RobustnessSpec& s) {
  if (s.attacks.empty()) throw ConfigError("robustness: no attacks");
  if (s.epsilons.empty() && !s.include_zero) throw ConfigError("robustness: no epsilons");
  for (double e : s.epsilons)
    if (!(e >= 0.0) || !std::isfinite(e)) throw ConfigError("robustness: epsilons must be finite and >= 0");
  if (s.set != "test" && s.set != "validation") throw ConfigError("robustness: set must be test or validation");
  if (s.max_samples < 0 || s.batch_size < 0 || s.noise < 0)
    throw ConfigError("robustness: max_samples, batch_size and noise must be >= 0");
  for (const auto& a : s.attacks) validate(a);
}

namespace {

// Predictions of target on xs (n samples) in batches.
void predict(AttackTarget& target, const float* xs, int n, std::vector<float>& logits, int32_t* pred) {
  const int k = target.classes();
  logits.resize(static_cast<size_t>(n) * k);
  target.logits(xs, n, logits.data());
  for (int i = 0; i < n; ++i) {
    const float* l = logits.data() + static_cast<size_t>(i) * k;
    pred[i] = static_cast<int32_t>(std::max_element(l, l + k) - l);
  }
}

void tally(const std::vector<int32_t>& y, const std::vector<int32_t>& pred, int classes, int64_t& correct,
           std::vector<double>& per_class, std::vector<std::vector<int64_t>>& confusion) {
  confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
  correct = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ++confusion[y[i]][pred[i]];
    correct += y[i] == pred[i];
  }
  per_class.assign(static_cast<size_t>(classes), std::numeric_limits<double>::quiet_NaN());
  for (int c = 0; c < classes; ++c) {
    int64_t row = 0;
    for (int64_t v : confusion[c]) row += v;
    if (row > 0) per_class[c] = static_cast<double>(confusion[c][c]) / static_cast<double>(row);
  }
}

}  // namespace

RobustnessReport evaluate_robustness(const RobustnessSpec& spec, AttackTarget& target, const InputDomain& domain,
                                     const Dataset& data, int batch_size) {
  validate(spec);
  const int64_t ss = target.sample_size();
  if (data.n > 0 && data.sample_size() != ss)
    throw ConfigError("robustness: the data's samples do not match the model's input");
  const int classes = target.classes();
  const int64_t n = spec.max_samples > 0 ? std::min(spec.max_samples, data.n) : data.n;
  const int bs = spec.batch_size > 0 ? spec.batch_size : std::max(1, batch_size);
  RobustnessReport rep;
  rep.n = n;
  if (n == 0) return rep;
  const std::vector<int32_t> y(data.y.begin(), data.y.begin() + n);
  for (int32_t v : y)
    if (v < 0 || v >= classes)
      throw DataError("robustness: label " + std::to_string(v) + " is outside the model's " +
                      std::to_string(classes) + " outputs");

  std::vector<float> logits, xb(static_cast<size_t>(bs) * ss);
  std::vector<int32_t> clean_pred(static_cast<size_t>(n)), pred(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; s += bs) {
    const int m = static_cast<int>(std::min<int64_t>(bs, n - s));
    std::copy(data.x.begin() + s * ss, data.x.begin() + (s + m) * ss, xb.begin());
    predict(target, xb.data(), m, logits, clean_pred.data() + s);
  }
  int64_t clean_correct = 0;
  tally(y, clean_pred, classes, clean_correct, rep.per_class_accuracy, rep.confusion);
  rep.clean_accuracy = static_cast<double>(clean_correct) / static_cast<double>(n);

  std::vector<double> eps = spec.epsilons;
  if (spec.include_zero) eps.push_back(0.0);
  std::sort(eps.begin(), eps.end());
  eps.erase(std::unique(eps.begin(), eps.end(), same_eps), eps.end());

  for (const AttackSpec& base : spec.attacks) {
    for (double e : eps) {
      const auto t0 = Clock::now();
      AttackSpec a = base;
      a.epsilon = e;
      for (int64_t s = 0; s < n; s += bs) {
        const int m = static_cast<int>(std::min<int64_t>(bs, n - s));
        std::copy(data.x.begin() + s * ss, data.x.begin() + (s + m) * ss, xb.begin());
        attack_batch(a, target, domain, xb.data(), y.data() + s, m, s);
        predict(target, xb.data(), m, logits, pred.data() + s);
      }
      AttackResult r;
      r.attack = attack_name(a.kind);
      r.epsilon = e;
      r.steps = a.kind == AttackKind::kFgsm ? 1 : a.steps;
      r.random_start = a.random_start;
      r.n = n;
      tally(y, pred, classes, r.correct, r.per_class_accuracy, r.confusion);
      r.accuracy = static_cast<double>(r.correct) / static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) r.flipped += pred[i] != clean_pred[i];
      r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      rep.results.push_back(std::move(r));
    }
  }
  rep.noise = spec.noise > 0 ? spec.noise : 1.0 / std::sqrt(static_cast<double>(n));
  rep.flags = check_sanity(rep, rep.noise);
  return rep;
}

std::vector<SanityFlag> check_sanity(const RobustnessReport& rep, double noise) {
  std::vector<SanityFlag> flags;
  if (rep.n <= 0) return flags;
  if (!(noise > 0)) noise = 1.0 / std::sqrt(static_cast<double>(rep.n));
  auto label = [](const AttackResult& r) {
    std::string s = r.attack;
    if (r.attack != "fgsm") s.append(1, '-').append(std::to_string(r.steps));
    if (r.random_start) s += " (random start)";
    return s;
  };
  const int64_t clean_correct = std::llround(rep.clean_accuracy * static_cast<double>(rep.n));

  // epsilon_zero: inputs are unchanged at epsilon 0, so the predictions must be too.
  for (const auto& r : rep.results) {
    if (r.epsilon != 0.0) continue;
    if (r.correct != clean_correct || r.flipped != 0)
      flags.push_back({"epsilon_zero", label(r) + " at epsilon 0: accuracy " + pct(r.accuracy) + " with " +
                                           std::to_string(r.flipped) + " predictions changed; clean accuracy " +
                                           pct(rep.clean_accuracy) + " (must be equal: a randomized or "
                                           "stateful model, or a bug in the attack)"});
  }

  // monotone: group by attack configuration, in increasing epsilon.
  std::map<std::tuple<std::string, int, bool>, std::vector<const AttackResult*>> groups;
  for (const auto& r : rep.results) groups[{r.attack, r.steps, r.random_start}].push_back(&r);
  for (auto& [key, rs] : groups) {
    std::sort(rs.begin(), rs.end(), [](auto* a, auto* b) { return a->epsilon < b->epsilon; });
    double lowest = rep.clean_accuracy;
    double lowest_eps = 0.0;
    bool any_below = false;
    for (const AttackResult* r : rs) {
      if (r->accuracy > lowest + noise) {
        flags.push_back({"monotone", label(*r) + ": accuracy " + pct(r->accuracy) + " at epsilon " +
                                         fmt_g(r->epsilon) + " is above " + pct(lowest) + (any_below ? " at epsilon " + fmt_g(lowest_eps) : std::string(" (clean)")) +
                                         " by more than the noise " + pct(noise) +
                                         " (gradient masking: a stronger attack must not do worse)"});
      }
      if (r->accuracy < lowest) {
        lowest = r->accuracy;
        lowest_eps = r->epsilon;
        any_below = true;
      }
    }
  }

  // pgd_vs_fgsm: iterating the same attack must not make it weaker.
  for (const auto& p : rep.results) {
    if (p.attack != "pgd") continue;
    for (const auto& f : rep.results) {
      if (f.attack != "fgsm" || !same_eps(f.epsilon, p.epsilon)) continue;
      if (p.accuracy > f.accuracy + noise)
        flags.push_back({"pgd_vs_fgsm", label(p) + " leaves " + pct(p.accuracy) + " accuracy at epsilon " +
                                            fmt_g(p.epsilon) + ", " + label(f) + " only " + pct(f.accuracy) +
                                            " (PGD must not be weaker than FGSM beyond the noise " + pct(noise) +
                                            ": gradient masking)"});
    }
  }
  return flags;
}

// ---------------------------------------------------------------- adversarial training

double AdversarialTraining::epsilon_at(double epoch) const {
  if (warmup_epochs <= 0) return attack.epsilon;
  return attack.epsilon * std::min(1.0, std::max(0.0, epoch) / warmup_epochs);
}

void validate(const AdversarialTraining& s) {
  if (!(s.fraction > 0.0 && s.fraction <= 1.0)) throw ConfigError("adversarial: fraction must be in (0, 1]");
  if (s.warmup_epochs < 0) throw ConfigError("adversarial: warmup_epochs must be >= 0");
  validate(s.attack);
}

void adversarial_batch(const AdversarialTraining& spec, Model& model, Loss& loss, const InputDomain& domain,
                       float* x, const int32_t* y, int n, double epoch, int64_t step) {
  if (!spec.enabled || n <= 0) return;
  const int m = std::clamp(static_cast<int>(std::ceil(spec.fraction * n - 1e-9)), 1, n);
  AttackSpec a = spec.attack;
  a.epsilon = spec.epsilon_at(epoch);
  if (a.epsilon <= 0.0) return;
  // The step size follows the ramped epsilon unless one was given.
  a.seed = mix_seed(spec.attack.seed, static_cast<uint64_t>(step), 0x4154u);
  ModelTarget target(model, loss, spec.train_mode);
  attack_batch(a, target, domain, x, y, m, 0);
}

// ---------------------------------------------------------------- YAML

AdversarialTraining parse_adversarial(const YAML::Node& node, const std::string& file) {
  const std::string sec = "adversarial";
  check_keys(node, {"enabled", "attack", "epsilon", "steps", "step_size", "random_start", "seed", "fraction",
                    "warmup_epochs", "train_mode"},
             file, sec);
  AdversarialTraining s;
  s.enabled = true;
  read(node, "enabled", s.enabled, file, sec);
  if (node["attack"]) s.attack.kind = kind_at(node["attack"], file, sec + ".attack");
  read(node, "epsilon", s.attack.epsilon, file, sec);
  read(node, "steps", s.attack.steps, file, sec);
  read(node, "step_size", s.attack.step_size, file, sec);
  s.attack.random_start = true;  // both recipes start from a random point of the ball
  read(node, "random_start", s.attack.random_start, file, sec);
  read(node, "seed", s.attack.seed, file, sec);
  read(node, "fraction", s.fraction, file, sec);
  read(node, "warmup_epochs", s.warmup_epochs, file, sec);
  read(node, "train_mode", s.train_mode, file, sec);
  try {
    validate(s);
  } catch (const ConfigError& e) {
    throw ConfigError(at(file, node) + ": section 'adversarial': " + e.what());
  }
  return s;
}

RobustnessSpec parse_robustness(const YAML::Node& node, const std::string& file) {
  const std::string sec = "robustness";
  check_keys(node, {"enabled", "epsilons", "attacks", "set", "max_samples", "batch_size", "include_zero", "noise",
                    "steps", "random_start", "seed"},
             file, sec);
  RobustnessSpec s;
  s.enabled = true;
  read(node, "enabled", s.enabled, file, sec);
  if (const YAML::Node e = node["epsilons"]) {
    s.epsilons.clear();
    if (e.IsSequence()) {
      for (const auto& v : e) {
        double x = 0;
        try {
          x = v.as<double>();
        } catch (const YAML::Exception&) {
          throw ConfigError(at(file, v) + ": key 'robustness.epsilons': cannot read '" + YAML::Dump(v) + "'");
        }
        s.epsilons.push_back(x);
      }
    } else {
      read(node, "epsilons", s.epsilons.emplace_back(), file, sec);
    }
  }
  // Defaults shared by attacks given by name only.
  int steps = 10;
  bool random_start = false;
  uint64_t seed = 0;
  read(node, "steps", steps, file, sec);
  read(node, "random_start", random_start, file, sec);
  read(node, "seed", seed, file, sec);
  for (auto& a : s.attacks) {
    if (a.kind != AttackKind::kFgsm) a.steps = steps;
    a.random_start = a.kind != AttackKind::kFgsm && random_start;
    a.seed = seed;
  }
  if (const YAML::Node as = node["attacks"]) {
    if (!as.IsSequence()) throw ConfigError(at(file, as) + ": key 'robustness.attacks' must be a list");
    s.attacks.clear();
    for (const auto& v : as) {
      AttackSpec a;
      a.steps = steps;
      a.random_start = random_start;
      a.seed = seed;
      if (v.IsMap()) {
        const std::string sub = sec + ".attacks[]";
        check_keys(v, {"kind", "steps", "step_size", "random_start", "seed"}, file, sub);
        if (!v["kind"]) throw ConfigError(at(file, v) + ": key '" + sub + ".kind' is missing");
        a.kind = kind_at(v["kind"], file, sub + ".kind");
        read(v, "steps", a.steps, file, sub);
        read(v, "step_size", a.step_size, file, sub);
        read(v, "random_start", a.random_start, file, sub);
        read(v, "seed", a.seed, file, sub);
      } else {
        a.kind = kind_at(v, file, sec + ".attacks");
      }
      if (a.kind == AttackKind::kFgsm && !(v.IsMap() && v["random_start"])) a.random_start = false;
      s.attacks.push_back(a);
    }
  }
  read(node, "set", s.set, file, sec);
  read(node, "max_samples", s.max_samples, file, sec);
  read(node, "batch_size", s.batch_size, file, sec);
  read(node, "include_zero", s.include_zero, file, sec);
  read(node, "noise", s.noise, file, sec);
  try {
    validate(s);
  } catch (const ConfigError& e) {
    throw ConfigError(at(file, node) + ": section 'robustness': " + e.what());
  }
  return s;
}

}  // namespace kestrel::trainer
