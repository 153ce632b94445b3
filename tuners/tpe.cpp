// TPE on the unit-cube encoding. Each ask: split the trials into "below" (the best gamma fraction) and "above",
// fit one Parzen mixture per group of jointly active parameters to each side, draw candidates from the "below"
// mixture and keep the one maximizing log l(x) - log g(x). Bandwidth and weight rules follow Optuna's
// parzen_estimator.py so that results are comparable; the kernels are evaluated in flat arrays (no per-kernel
// allocation) because the "above" side grows with the study.
#include "tuners/tpe.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "common/error.hpp"
#include "tuners/constraints.hpp"
#include "tuners/params.hpp"
#include "tuners/random.hpp"
#include "tuners/sobol.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

TpeParams TpeParams::from_json(const nlohmann::json& j) {
  TpeParams p;
  ParamReader r("tuner 'tpe'", j);
  r.get("n_startup_trials", p.n_startup_trials);
  r.get("n_ei_candidates", p.n_ei_candidates);
  r.get("gamma", p.gamma);
  r.get("gamma_max", p.gamma_max);
  r.get("prior_weight", p.prior_weight);
  r.get("consider_magic_clip", p.consider_magic_clip);
  r.get("consider_endpoints", p.consider_endpoints);
  r.get("weights_flat", p.weights_flat);
  r.get("multivariate", p.multivariate);
  r.get("bandwidth", p.bandwidth);
  r.get("constant_liar", p.constant_liar);
  r.get("startup", p.startup);
  r.finish();
  r.require(p.n_startup_trials >= 0, "n_startup_trials", "must be >= 0");
  r.require(p.n_ei_candidates >= 1, "n_ei_candidates", "must be >= 1");
  r.require(p.gamma > 0 && p.gamma <= 1, "gamma", "must be in (0, 1]");
  r.require(p.gamma_max >= 1, "gamma_max", "must be >= 1");
  r.require(p.prior_weight > 0, "prior_weight", "must be > 0");
  r.require(p.weights_flat >= 1, "weights_flat", "must be >= 1");
  r.require(p.bandwidth == "neighbor" || p.bandwidth == "scott", "bandwidth", "must be \"neighbor\" or \"scott\"");
  r.require(p.startup == "random" || p.startup == "sobol", "startup", "must be \"random\" or \"sobol\"");
  return p;
}

namespace {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
// A discrete kernel whose nearest cell edge is this many bandwidths away contributes < e^-72 of its mass: it is
// dropped instead of evaluating two erfc calls (the prior kernel keeps every mixture density positive).
constexpr double kFarZ = 12.0;

// LogDiscrete: a log-scale int, whose cells have unequal widths on the unit scale (log(v -/+ 0.5) mapped to it).
enum class DimKind : uint8_t { Continuous, Discrete, LogDiscrete, Categorical };

// Cells of a log-scale int parameter on [low, high]: the unit coordinate is affine in log over
// [log(low - 0.5), log(high + 0.5)] (SearchSpace::encode_one), so value v covers [unit(v - 0.5), unit(v + 0.5)].
struct LogCells {
  double low = 0, high = 0, log_lo = 0, log_span = 1;
  LogCells() = default;
  LogCells(double lo, double hi) : low(lo), high(hi), log_lo(std::log(lo - 0.5)), log_span(std::log(hi + 0.5) - log_lo) {}
  double unit(double v) const { return std::clamp((std::log(v) - log_lo) / log_span, 0.0, 1.0); }
  double value(double u) const { return std::clamp(std::round(std::exp(log_lo + u * log_span)), low, high); }
};

// Upper tail Q(x) = 1 - Phi(x).
inline double upper_tail(double x) { return 0.5 * std::erfc(x * 0.70710678118654752440); }

// log(Phi(b) - Phi(a)) for a < b, computed on the side of the tails where it does not cancel.
double log_mass(double a, double b) {
  double m;
  if (a >= 0)
    m = upper_tail(a) - upper_tail(b);
  else if (b <= 0)
    m = upper_tail(-b) - upper_tail(-a);
  else
    m = 1.0 - upper_tail(b) - upper_tail(-a);
  return m > 0 ? std::log(m) : kNegInf;
}

// A mixture of product kernels over the dimensions of one parameter group, in flat arrays.
struct Estimator {
  struct Dim {
    DimKind kind = DimKind::Continuous;
    int64_t k = 0;                        // cells (discrete) or choices (categorical)
    LogCells cells;                       // log discrete
    std::vector<double> mu, sigma, inv_sigma, lnorm;  // numeric: lnorm = -log Z (- log sigma - log sqrt(2pi))
    std::vector<int32_t> obs;             // categorical: observed choice per kernel (-1 for the prior)
    std::vector<double> log_on, log_off;  // categorical: log p(observed choice), log p(any other choice)
    // Discrete: per-kernel log mass of cells already evaluated (candidates from l(x) crowd into few cells, and
    // each evaluation costs two erfc per kernel).
    mutable std::vector<std::pair<int64_t, std::vector<double>>> cell_memo;
  };
  size_t n = 0;  // kernels (observations + prior)
  std::vector<double> log_w, cum_w;
  std::vector<Dim> dims;
};

struct DimInfo {
  size_t param;
  DimKind kind;
  int64_t k;
  LogCells cells = {};
};

// Optuna's default_weights: newest `flat` weigh 1, older ones ramp linearly from 1/n.
void ramp_weights(size_t n, int64_t flat, std::vector<double>& w) {
  w.assign(n, 1.0);
  size_t f = static_cast<size_t>(flat);
  if (n <= f) return;
  size_t m = n - f;  // linspace(1/n, 1, m)
  for (size_t i = 0; i < m; ++i)
    w[i] = m == 1 ? 1.0 / static_cast<double>(n)
                  : 1.0 / static_cast<double>(n) + (1.0 - 1.0 / static_cast<double>(n)) * static_cast<double>(i) / static_cast<double>(m - 1);
}

// Sorts keys (value << 24 | index) by their value bits with a stable LSD radix sort (5 passes of 8 bits): equal
// values keep index order, so the result equals a full sort of the keys, at a fraction of the cost for the
// thousand-observation "above" side.
void radix_sort_keys(std::vector<uint64_t>& v, std::vector<uint64_t>& tmp) {
  tmp.resize(v.size());
  for (int shift = 24; shift < 64; shift += 8) {
    size_t count[257] = {0};
    for (uint64_t k : v) ++count[((k >> shift) & 0xFF) + 1];
    for (int i = 0; i < 256; ++i) count[i + 1] += count[i];
    for (uint64_t k : v) tmp[count[(k >> shift) & 0xFF]++] = k;
    v.swap(tmp);
  }
}

// Builds the estimator from `rows` (encoded trials, oldest first), for the group dims.
void build(Estimator& e, const std::vector<const double*>& rows, const std::vector<DimInfo>& dims, const TpeParams& p) {
  const size_t n_obs = rows.size();
  e.n = n_obs + 1;
  std::vector<double> w;
  ramp_weights(n_obs, p.weights_flat, w);
  w.push_back(n_obs == 0 ? 1.0 : p.prior_weight);
  double total = 0;
  for (double x : w) total += x;
  e.log_w.resize(e.n);
  e.cum_w.resize(e.n);
  double acc = 0;
  for (size_t j = 0; j < e.n; ++j) {
    e.log_w[j] = std::log(w[j] / total);
    acc += w[j] / total;
    e.cum_w[j] = acc;
  }
  e.dims.assign(dims.size(), {});
  const double sigma0 =
      0.2 * std::pow(static_cast<double>(std::max<size_t>(n_obs, 1)), -1.0 / (static_cast<double>(dims.size()) + 4.0));
  const double min_sigma = p.consider_magic_clip ? 1.0 / std::min(100.0, 1.0 + static_cast<double>(n_obs) + 1.0) : 1e-12;
  // (quantized value << 24 | index; studies stay far below 2^24 trials): integer keys sort faster than pairs
  std::vector<uint64_t> sorted, scratch;
  for (size_t d = 0; d < dims.size(); ++d) {
    auto& D = e.dims[d];
    D.kind = dims[d].kind;
    D.k = dims[d].k;
    D.cells = dims[d].cells;
    const size_t col = dims[d].param;
    if (D.kind == DimKind::Categorical) {
      const double k = static_cast<double>(D.k);
      const double base = (n_obs == 0 ? 1.0 : p.prior_weight) / static_cast<double>(e.n);
      D.obs.resize(e.n);
      D.log_on.resize(e.n);
      D.log_off.resize(e.n);
      for (size_t j = 0; j < n_obs; ++j) {
        D.obs[j] = static_cast<int32_t>(std::min<int64_t>(D.k - 1, static_cast<int64_t>(rows[j][col] * k)));
        D.log_on[j] = std::log((base + 1.0) / (1.0 + k * base));
        D.log_off[j] = std::log(base / (1.0 + k * base));
      }
      D.obs[n_obs] = -1;
      D.log_on[n_obs] = D.log_off[n_obs] = -std::log(k);
      continue;
    }
    D.mu.resize(e.n);
    D.sigma.resize(e.n);
    for (size_t j = 0; j < n_obs; ++j) D.mu[j] = rows[j][col];
    D.mu[n_obs] = 0.5;
    if (p.bandwidth == "scott") {
      for (size_t j = 0; j < n_obs; ++j) D.sigma[j] = sigma0;
    } else {
      // Distance to the farther neighbour among the observations and the domain ends (Optuna 5 no longer counts
      // the prior's mean as a neighbour: it narrowed kernels near the centre for no reason).
      // The order comes from 40-bit quantized keys (ties by index); the gaps use the exact values.
      sorted.clear();
      for (size_t j = 0; j < n_obs; ++j)
        sorted.push_back((static_cast<uint64_t>(std::clamp(D.mu[j], 0.0, 1.0) * 0x1.0p40) << 24) | j);
      radix_sort_keys(sorted, scratch);
      const size_t m = sorted.size();
      auto idx = [&](size_t i) { return static_cast<size_t>(sorted[i - 1] & 0xFFFFFFu); };
      auto at = [&](size_t i) { return i == 0 ? 0.0 : i == m + 1 ? 1.0 : D.mu[idx(i)]; };  // with endpoints
      for (size_t i = 1; i <= m; ++i) {
        double s = std::max(at(i) - at(i - 1), at(i + 1) - at(i));
        if (!p.consider_endpoints && m + 2 >= 4) {
          if (i == 1) s = at(2) - at(1);
          if (i == m) s = at(m) - at(m - 1);
        }
        D.sigma[idx(i)] = s;
      }
    }
    for (size_t j = 0; j < n_obs; ++j) D.sigma[j] = std::clamp(D.sigma[j], min_sigma, 1.0);
    D.sigma[n_obs] = 1.0;
    D.inv_sigma.resize(e.n);
    D.lnorm.resize(e.n);
    double last_sigma = -1.0, last_log_sigma = 0.0;  // clipped kernels share one width: one log for all of them
    for (size_t j = 0; j < e.n; ++j) {
      D.inv_sigma[j] = 1.0 / D.sigma[j];
      if (D.sigma[j] != last_sigma) {
        last_sigma = D.sigma[j];
        last_log_sigma = std::log(last_sigma);
      }
      const double za = -D.mu[j] * D.inv_sigma[j], zb = (1.0 - D.mu[j]) * D.inv_sigma[j];
      // Kernels far inside the domain lose < 1e-15 of their mass to truncation: skip the two erfc calls.
      const double log_z = za < -8.5 && zb > 8.5 ? 0.0 : log_mass(za, zb);
      D.lnorm[j] = -log_z - (D.kind == DimKind::Continuous ? last_log_sigma + kLogSqrt2Pi : 0.0);
    }
  }
}

// log of the mixture density at x (one coordinate per group dim); `acc` is scratch of size e.n.
double log_pdf(const Estimator& e, const double* x, std::vector<double>& acc) {
  acc.assign(e.log_w.begin(), e.log_w.end());
  for (size_t d = 0; d < e.dims.size(); ++d) {
    const auto& D = e.dims[d];
    const double xd = x[d];
    switch (D.kind) {
      case DimKind::Continuous: {
        const double* mu = D.mu.data();
        const double* is = D.inv_sigma.data();
        const double* ln = D.lnorm.data();
        double* a = acc.data();
        for (size_t j = 0; j < e.n; ++j) {
          double z = (xd - mu[j]) * is[j];
          a[j] += ln[j] - 0.5 * z * z;
        }
        break;
      }
      case DimKind::Discrete:
      case DimKind::LogDiscrete: {
        // The kernel mass of the candidate's cell (Optuna's discrete kernels), memoized per cell.
        const bool lg = D.kind == DimKind::LogDiscrete;
        const double lv = lg ? D.cells.value(xd) : 0.0;
        const int64_t cell = lg ? static_cast<int64_t>(lv - D.cells.low)
                                : std::min<int64_t>(D.k - 1, static_cast<int64_t>(xd * static_cast<double>(D.k)));
        const std::vector<double>* lm = nullptr;
        for (const auto& [c, v] : D.cell_memo)
          if (c == cell) lm = &v;
        if (!lm) {
          std::vector<double> v(e.n);
          const double w = 1.0 / static_cast<double>(D.k);
          const double lo = lg ? D.cells.unit(lv - 0.5) : static_cast<double>(cell) * w;
          const double hi = lg ? D.cells.unit(lv + 0.5) : lo + w;
          for (size_t j = 0; j < e.n; ++j) {
            double za = (lo - D.mu[j]) * D.inv_sigma[j], zb = (hi - D.mu[j]) * D.inv_sigma[j];
            v[j] = za > kFarZ || zb < -kFarZ ? kNegInf : log_mass(za, zb) + D.lnorm[j];
          }
          D.cell_memo.emplace_back(cell, std::move(v));
          lm = &D.cell_memo.back().second;
        }
        for (size_t j = 0; j < e.n; ++j) acc[j] += (*lm)[j];
        break;
      }
      case DimKind::Categorical: {
        const int32_t c = static_cast<int32_t>(std::min<int64_t>(D.k - 1, static_cast<int64_t>(xd * static_cast<double>(D.k))));
        for (size_t j = 0; j < e.n; ++j) acc[j] += D.obs[j] == c ? D.log_on[j] : D.log_off[j];
        break;
      }
    }
  }
  double mx = kNegInf;
  for (double v : acc) mx = std::max(mx, v);
  if (mx == kNegInf) return kNegInf;
  double s = 0;
  for (double v : acc)
    if (v > mx - 40.0) s += std::exp(v - mx);
  return mx + std::log(s);
}

// One draw from the mixture into x (group dims).
void sample(const Estimator& e, Rng& rng, double* x) {
  double r = rng.uniform();
  size_t j = static_cast<size_t>(std::lower_bound(e.cum_w.begin(), e.cum_w.end(), r) - e.cum_w.begin());
  j = std::min(j, e.n - 1);
  for (size_t d = 0; d < e.dims.size(); ++d) {
    const auto& D = e.dims[d];
    if (D.kind == DimKind::Categorical) {
      // Kernel j puts p_on on its observed choice and p_off on each other one.
      double u = rng.uniform();
      int64_t c;
      if (D.obs[j] < 0) {
        c = std::min<int64_t>(D.k - 1, static_cast<int64_t>(u * static_cast<double>(D.k)));
      } else {
        double p_on = std::exp(D.log_on[j]), p_off = std::exp(D.log_off[j]);
        if (u < p_on) {
          c = D.obs[j];
        } else {
          int64_t i = std::min<int64_t>(D.k - 2, static_cast<int64_t>((u - p_on) / p_off));
          c = i < D.obs[j] ? i : i + 1;
        }
      }
      x[d] = (static_cast<double>(c) + 0.5) / static_cast<double>(D.k);
      continue;
    }
    // Truncated normal on [0, 1] by rejection: the kernel mean lies inside and sigma <= 1, so at least a third of
    // the draws are accepted; after 100 misses (practically never) the last draw is clamped.
    double v = 0.5;
    for (int t = 0; t < 100; ++t) {
      v = D.mu[j] + D.sigma[j] * rng.normal();
      if (v >= 0.0 && v <= 1.0) break;
    }
    v = std::clamp(v, 0.0, 1.0);
    if (D.kind == DimKind::Discrete) {
      int64_t c = std::min<int64_t>(D.k - 1, static_cast<int64_t>(v * static_cast<double>(D.k)));
      v = (static_cast<double>(c) + 0.5) / static_cast<double>(D.k);
    } else if (D.kind == DimKind::LogDiscrete) {
      v = D.cells.unit(D.cells.value(v));  // the encoding of the rounded value, as for the observations
    }
    x[d] = v;
  }
}

}  // namespace

// Encoded finished trials by number (finished trials are immutable), and the parameter groups of the space.
struct TpeTuner::Cache {
  struct Row {
    int64_t id = -1;
    TrialState state = TrialState::Waiting;
    std::vector<double> u;
    std::vector<uint8_t> active;
    double violation = 0.0;  // total constraint violation (0 without the constraints attr)
  };
  const SearchSpace* space = nullptr;
  size_t space_size = 0;
  std::unordered_map<int64_t, Row> rows;
  std::vector<DimInfo> dims;                 // per parameter (Fixed ones have k = 0 and are skipped)
  std::vector<std::vector<size_t>> groups;   // parameter indices, groups ordered by their first member
  std::vector<int64_t> group_of;             // parameter -> group (or -1 for fixed)

  void reset(const SearchSpace& s, bool multivariate) {
    space = &s;
    space_size = s.size();
    rows.clear();
    dims.clear();
    groups.clear();
    group_of.assign(s.size(), -1);
    std::map<std::string, size_t> by_key;
    for (size_t i = 0; i < s.size(); ++i) {
      const auto& p = s.params()[i];
      DimInfo d{i, DimKind::Continuous, 0};
      if (p.kind == search::ParamKind::Categorical) {
        d.kind = DimKind::Categorical;
        d.k = static_cast<int64_t>(p.choices.size());
      } else if (p.kind == search::ParamKind::Fixed) {
        d.k = 0;
      } else if (!p.log && (p.kind == search::ParamKind::Int || p.step)) {
        d.kind = DimKind::Discrete;
        d.k = p.cardinality();
      } else if (p.log && p.kind == search::ParamKind::Int) {
        d.kind = DimKind::LogDiscrete;
        d.k = p.cardinality();
        d.cells = LogCells(p.low, p.high);
      }
      dims.push_back(d);
      if (p.kind == search::ParamKind::Fixed) continue;
      std::string key;
      if (!multivariate) {
        key = "#" + std::to_string(i);
      } else if (p.condition) {
        key = p.condition->parent + "|";
        for (const auto& v : p.condition->values) key += search::to_string(v) + ",";
      }
      auto it = by_key.find(key);
      if (it == by_key.end()) {
        it = by_key.emplace(key, groups.size()).first;
        groups.emplace_back();
      }
      groups[it->second].push_back(i);
      group_of[i] = static_cast<int64_t>(it->second);
    }
  }

  const Row& row(const SearchSpace& s, const Trial& t) {
    auto& r = rows[t.number];
    if (r.id != t.id || r.state != t.state || !is_finished(t.state) || r.u.empty()) {
      r.id = t.id;
      r.state = t.state;
      r.u = s.encode(t.config);
      r.active.assign(s.size(), 0);
      for (size_t i = 0; i < s.size(); ++i) r.active[i] = t.config.count(s.params()[i].name) ? 1 : 0;
      auto c = is_finished(t.state) ? constraints_of(t) : std::nullopt;
      r.violation = c ? violation(*c) : 0.0;
    }
    return r;
  }
};

TpeTuner::TpeTuner(TpeParams params, uint64_t seed) : params_(std::move(params)), seed_(seed), cache_(std::make_unique<Cache>()) {
  uint64_t s = derive_seed(seed_, -1, 0x747065);  // "tpe": start-up draws independent of the model's
  startup_ = params_.startup == "sobol" ? make_sobol_tuner({}, s) : make_random_tuner({}, s);
}

TpeTuner::~TpeTuner() = default;

Proposal TpeTuner::ask(const History& h, int64_t number) {
  const SearchSpace& space = *h.space;
  Cache& cache = *cache_;
  if (cache.space != &space || cache.space_size != space.size()) cache.reset(space, params_.multivariate);

  struct Scored {
    double key1, key2;  // sort keys (ascending = better)
    int64_t number;
    const double* u;
    const uint8_t* active;
    bool below = false;
  };
  std::vector<Scored> complete, pruned, running, infeasible;
  complete.reserve(h.trials.size());
  const std::string metric = h.objectives.empty() ? std::string("value") : h.objectives[0].name;
  const double sign = search::minimize_sign(h.objectives.empty() ? search::Direction::Minimize : h.objectives[0].direction);
  for (const Trial* t : h.trials) {
    if (t->state == TrialState::Failed) continue;
    if (t->state == TrialState::Complete) {
      const auto& r = cache.row(space, *t);
      if (r.violation > 0) {  // infeasible (Optuna's rule: whatever its value), ranked by total violation
        infeasible.push_back({r.violation, 0.0, t->number, r.u.data(), r.active.data()});
        continue;
      }
      auto l = loss_of(h, *t);
      if (!l) continue;  // a COMPLETE trial without a finite value says nothing usable
      complete.push_back({*l, 0.0, t->number, r.u.data(), r.active.data()});
    } else if (t->state == TrialState::Pruned) {
      const auto& r = cache.row(space, *t);
      if (r.violation > 0) {
        infeasible.push_back({r.violation, 0.0, t->number, r.u.data(), r.active.data()});
        continue;
      }
      // Rank pruned trials by how far they got, then by their last value there (Optuna's rule).
      double k1 = 1.0, k2 = 0.0;
      int64_t last = -1;
      for (const auto& rep : t->reports)
        if (rep.metric == metric && rep.step >= last) {
          last = rep.step;
          k2 = std::isnan(rep.value) ? std::numeric_limits<double>::infinity() : sign * rep.value;
        }
      if (last >= 0) k1 = -static_cast<double>(last);
      pruned.push_back({k1, k2, t->number, r.u.data(), r.active.data()});
    } else if (params_.constant_liar) {
      const auto& r = cache.row(space, *t);
      running.push_back({0.0, 0.0, t->number, r.u.data(), r.active.data()});
    }
  }
  const int64_t n = static_cast<int64_t>(complete.size() + pruned.size() + infeasible.size());
  if (n < params_.n_startup_trials) {
    Proposal p = startup_->ask(h, number);
    return p;
  }

  auto by_keys = [](const Scored* a, const Scored* b) {
    if (a->key1 != b->key1) return a->key1 < b->key1;
    if (a->key2 != b->key2) return a->key2 < b->key2;
    return a->number < b->number;
  };
  auto by_number = [](const Scored& a, const Scored& b) { return a.number < b.number; };
  // History order is trial-number order by contract; sort only if a caller broke it (the weights depend on it).
  for (auto* v : {&complete, &pruned, &running, &infeasible})
    if (!std::is_sorted(v->begin(), v->end(), by_number)) std::sort(v->begin(), v->end(), by_number);
  const size_t n_below = static_cast<size_t>(
      std::min<int64_t>(static_cast<int64_t>(std::ceil(params_.gamma * static_cast<double>(n))), params_.gamma_max));
  // The best n_below feasible COMPLETE trials, then (if too few) the best PRUNED ones, then the least violating
  // infeasible ones (Optuna's _split_trials): a partial sort is enough. Feasible trials always rank first, so
  // infeasible ones mostly shape g(x) and steer candidates away from the regions that violate.
  auto pick = [&](std::vector<Scored>& from, size_t want) {
    std::vector<Scored*> ptr(from.size());
    for (size_t i = 0; i < from.size(); ++i) ptr[i] = &from[i];
    const size_t k = std::min(want, ptr.size());
    std::partial_sort(ptr.begin(), ptr.begin() + static_cast<std::ptrdiff_t>(k), ptr.end(), by_keys);
    for (size_t i = 0; i < k; ++i) ptr[i]->below = true;
    return k;
  };
  const size_t from_complete = pick(complete, n_below);
  const size_t from_pruned = pick(pruned, n_below - from_complete);
  pick(infeasible, n_below - from_complete - from_pruned);
  // Merge the four number-ordered lists into below/above, keeping number order.
  std::vector<Scored> below, above;
  below.reserve(n_below);
  above.reserve(complete.size() + pruned.size() + running.size() + infeasible.size());
  {
    size_t a = 0, b = 0, c = 0, d = 0;
    while (a < complete.size() || b < pruned.size() || c < running.size() || d < infeasible.size()) {
      const Scored* next = nullptr;
      size_t* which = nullptr;
      for (auto [v, i] : {std::pair{&complete, &a}, std::pair{&pruned, &b}, std::pair{&running, &c},
                          std::pair{&infeasible, &d}})
        if (*i < v->size() && (!next || (*v)[*i].number < next->number)) {
          next = &(*v)[*i];
          which = i;
        }
      ++*which;
      (next->below ? below : above).push_back(*next);
    }
  }

  Rng rng(derive_seed(seed_, number));
  std::vector<double> u_full(space.size(), 0.5);
  Config partial;
  Estimator l, g;
  std::vector<const double*> rows_l, rows_g;
  std::vector<DimInfo> gdims;
  std::vector<double> cand, acc;
  const size_t n_cand = static_cast<size_t>(params_.n_ei_candidates);
  for (size_t i = 0; i < space.size(); ++i) {
    const auto& p = space.params()[i];
    if (cache.group_of[i] < 0) {  // fixed
      if (space.is_active(p, partial)) partial[p.name] = p.fixed;
      continue;
    }
    const auto& group = cache.groups[static_cast<size_t>(cache.group_of[i])];
    if (group.front() != i) continue;  // handled with its group's first member
    if (!space.is_active(p, partial)) continue;
    gdims.clear();
    for (size_t m : group) gdims.push_back(cache.dims[m]);
    auto collect = [&](const std::vector<Scored>& from, std::vector<const double*>& rows) {
      rows.clear();
      for (const auto& s : from) {
        bool all = true;
        for (size_t m : group) all = all && s.active[m];
        if (all) rows.push_back(s.u);
      }
    };
    collect(below, rows_l);
    collect(above, rows_g);
    build(l, rows_l, gdims, params_);
    build(g, rows_g, gdims, params_);
    const size_t gd = group.size();
    cand.resize(n_cand * gd);
    for (size_t c = 0; c < n_cand; ++c) sample(l, rng, cand.data() + c * gd);
    size_t best = 0;
    double best_score = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < n_cand; ++c) {
      double s = log_pdf(l, cand.data() + c * gd, acc) - log_pdf(g, cand.data() + c * gd, acc);
      if (s > best_score) {
        best_score = s;
        best = c;
      }
    }
    for (size_t d = 0; d < gd; ++d) {
      u_full[group[d]] = cand[best * gd + d];
      partial[space.params()[group[d]].name] = space.decode_one(group[d], u_full[group[d]]);
    }
  }
  Config c = space.decode(u_full);
  if (space.is_finite()) {
    auto seen = seen_keys(h);
    if (seen.count(space.key(c))) {
      Rng alt_rng(derive_seed(seed_, number, 2));
      auto alt = random_unseen(space, seen, alt_rng);
      if (!alt) throw SpaceExhausted("tpe: every one of the space's configurations is already in the study");
      c = std::move(*alt);
    }
  }
  return Proposal{std::move(c), {}, std::nullopt};
}

std::unique_ptr<Tuner> make_tpe_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<TpeTuner>(TpeParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
