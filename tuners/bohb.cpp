// BOHB's model: per-budget good/bad kernel densities over the unit-cube encoding (written here because the TPE
// tuner's estimator is not exposed through a header; it is small), and the rank validation that picks the budget.
#include "tuners/bohb.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <string>

#include "common/error.hpp"
#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

BohbParams BohbParams::from_json(const nlohmann::json& j) {
  BohbParams p;
  ParamReader r("tuner 'bohb'", j);
  r.get("min_resource", p.hyperband.min_resource);
  r.get("max_resource", p.hyperband.max_resource);
  r.get("eta", p.hyperband.eta);
  r.get("iterations", p.hyperband.iterations);
  r.get("min_points_in_model", p.min_points_in_model);
  r.get("top_n_percent", p.top_n_percent);
  r.get("num_samples", p.num_samples);
  r.get("random_fraction", p.random_fraction);
  r.get("bandwidth_factor", p.bandwidth_factor);
  r.get("min_bandwidth", p.min_bandwidth);
  r.get("min_rank_pairs", p.min_rank_pairs);
  r.get("min_rank_agreement", p.min_rank_agreement);
  r.finish();
  r.require(p.hyperband.min_resource > 0, "min_resource", "must be > 0");
  r.require(p.hyperband.max_resource >= p.hyperband.min_resource, "max_resource", "must be >= min_resource");
  r.require(p.hyperband.eta >= 2, "eta", "must be at least 2");
  r.require(p.hyperband.iterations >= 0, "iterations", "must be >= 0 (0 = no limit)");
  r.require(p.min_points_in_model >= 0, "min_points_in_model", "must be >= 0");
  r.require(p.top_n_percent > 0 && p.top_n_percent < 100, "top_n_percent", "must be in (0, 100)");
  r.require(p.num_samples >= 1, "num_samples", "must be >= 1");
  r.require(p.random_fraction >= 0 && p.random_fraction <= 1, "random_fraction", "must be in [0, 1]");
  r.require(p.bandwidth_factor > 0, "bandwidth_factor", "must be > 0");
  r.require(p.min_bandwidth > 0, "min_bandwidth", "must be > 0");
  r.require(p.min_rank_pairs >= 0, "min_rank_pairs", "must be >= 0");
  r.require(p.min_rank_agreement >= -1 && p.min_rank_agreement <= 1, "min_rank_agreement", "must be in [-1, 1]");
  return p;
}

namespace {

// Product-Gaussian KDE in the unit cube.
struct Kde {
  std::vector<std::vector<double>> points;
  std::vector<double> bw;

  Kde(std::vector<std::vector<double>> pts, double min_bw) : points(std::move(pts)) {
    const size_t d = points.empty() ? 0 : points[0].size();
    const double n = static_cast<double>(points.size());
    bw.assign(d, min_bw);
    for (size_t k = 0; k < d; ++k) {
      double mean = 0, var = 0;
      for (const auto& p : points) mean += p[k];
      mean /= n;
      for (const auto& p : points) var += (p[k] - mean) * (p[k] - mean);
      var /= std::max(1.0, n - 1);
      bw[k] = std::max(min_bw, std::sqrt(var) * std::pow(n, -1.0 / (static_cast<double>(d) + 4.0)));
    }
  }

  double log_pdf(const std::vector<double>& x) const {
    // log-sum-exp over the points, for stability when densities are tiny.
    std::vector<double> terms;
    terms.reserve(points.size());
    for (const auto& p : points) {
      double s = 0;
      for (size_t k = 0; k < x.size(); ++k) {
        const double z = (x[k] - p[k]) / bw[k];
        s += -0.5 * z * z - std::log(bw[k] * std::sqrt(2.0 * std::numbers::pi));
      }
      terms.push_back(s);
    }
    const double m = *std::max_element(terms.begin(), terms.end());
    double acc = 0;
    for (double t : terms) acc += std::exp(t - m);
    return m + std::log(acc / static_cast<double>(points.size()));
  }
};

// Mean loss of each configuration (by SearchSpace::key) at one budget, with its cube encoding.
struct Observed {
  double sum = 0;
  int64_t count = 0;
  std::vector<double> x;
  double mean() const { return sum / static_cast<double>(count); }
};
using Budgets = std::map<double, std::map<std::string, Observed>>;

bool same_budget(double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b)); }

// Whether `budget`'s ranking may stand in for the full budget's: it is the full budget (or above it), or its
// results agree with the full budget's on the configurations observed at both (BohbParams' rank validation).
bool validated(const Budgets& by_budget, double budget, double full, const BohbParams& p) {
  if (budget >= full || same_budget(budget, full)) return true;
  const std::map<std::string, Observed>* top = nullptr;
  for (const auto& [b, obs] : by_budget)
    if (same_budget(b, full)) top = &obs;
  std::vector<double> low, high;
  if (top)
    for (const auto& [key, o] : by_budget.at(budget))
      if (auto it = top->find(key); it != top->end()) {
        low.push_back(o.mean());
        high.push_back(it->second.mean());
      }
  const RankAgreement r = rank_agreement(low, high);
  return r.pairs >= p.min_rank_pairs && (r.pairs == 0 || r.tau >= p.min_rank_agreement);
}

}  // namespace

Config BohbTuner::sample_new(const History& h, int64_t number, int64_t bracket) {
  Rng rng(derive_seed(seed_, number, 0x626f6862));  // "bohb"
  const SearchSpace& space = *h.space;
  if (rng.uniform() < bohb_.random_fraction) return HyperbandTuner::sample_new(h, number, bracket);

  const int64_t d = static_cast<int64_t>(space.size());
  const int64_t n_min = bohb_.min_points_in_model > 0 ? bohb_.min_points_in_model : d + 1;
  // Results per budget (the "budget" attr the study stored from our proposals), per configuration.
  Budgets by_budget;
  for (const Trial* t : h.trials) {
    auto it = t->attrs.find(kAttrBudget);
    auto l = loss_of(h, *t);
    if (it == t->attrs.end() || !l) continue;
    double b = 0;
    try {
      b = std::stod(it->second);
    } catch (const std::exception&) {
      continue;
    }
    Observed& o = by_budget[b][space.key(t->config)];
    if (o.count == 0) o.x = space.encode(t->config);
    o.sum += *l;
    ++o.count;
  }
  for (auto it = by_budget.rbegin(); it != by_budget.rend(); ++it) {
    const auto n = static_cast<int64_t>(it->second.size());
    if (n < n_min + 2 || !validated(by_budget, it->first, params_.max_resource, bohb_)) continue;
    // Map order (by key) then a stable sort: the split is reproducible whatever order the history lists trials in.
    std::vector<std::pair<double, const std::vector<double>*>> obs;
    for (const auto& [key, o] : it->second) obs.emplace_back(o.mean(), &o.x);
    std::stable_sort(obs.begin(), obs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    int64_t n_good = std::max<int64_t>(n_min, static_cast<int64_t>(std::floor(bohb_.top_n_percent / 100.0 * static_cast<double>(n))));
    n_good = std::min(n_good, n - 1);
    std::vector<std::vector<double>> good, bad;
    for (int64_t i = 0; i < n; ++i) (i < n_good ? good : bad).push_back(*obs[static_cast<size_t>(i)].second);
    Kde lk(good, bohb_.min_bandwidth), gk(bad, bohb_.min_bandwidth);
    std::vector<double> best;
    double best_score = -INFINITY;
    for (int64_t s = 0; s < bohb_.num_samples; ++s) {
      const auto& centre = good[static_cast<size_t>(rng.below(static_cast<int64_t>(good.size())))];
      std::vector<double> x(centre.size());
      for (size_t k = 0; k < x.size(); ++k) {
        // Truncated normal around the centre by rejection (falls back to clamping after a few tries).
        double v = centre[k] + rng.normal() * lk.bw[k] * bohb_.bandwidth_factor;
        for (int tries = 0; (v < 0 || v > 1) && tries < 8; ++tries)
          v = centre[k] + rng.normal() * lk.bw[k] * bohb_.bandwidth_factor;
        x[k] = std::clamp(v, 0.0, 1.0);
      }
      const double score = lk.log_pdf(x) - gk.log_pdf(x);
      if (score > best_score) {
        best_score = score;
        best = std::move(x);
      }
    }
    // Densities can underflow together far from every point (score NaN); then no candidate was kept.
    if (best.empty()) break;
    return space.decode(best);
  }
  return HyperbandTuner::sample_new(h, number, bracket);
}

std::unique_ptr<Tuner> make_bohb_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<BohbTuner>(BohbParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
