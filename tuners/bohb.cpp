// BOHB's model: per-budget good/bad kernel densities over the unit-cube encoding, written here because the TPE
// tuner's estimator is not exposed through a header; it is small (Scott bandwidths, product Gaussians).
#include "tuners/bohb.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

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

}  // namespace

Config BohbTuner::sample_new(const History& h, int64_t number, int64_t bracket) {
  Rng rng(derive_seed(seed_, number, 0x626f6862));  // "bohb"
  const SearchSpace& space = *h.space;
  if (rng.uniform() < bohb_.random_fraction) return HyperbandTuner::sample_new(h, number, bracket);

  const int64_t d = static_cast<int64_t>(space.size());
  const int64_t n_min = bohb_.min_points_in_model > 0 ? bohb_.min_points_in_model : d + 1;
  // Results per budget (the "budget" attr the study stored from our proposals).
  std::map<double, std::vector<std::pair<double, std::vector<double>>>> by_budget;
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
    by_budget[b].emplace_back(*l, space.encode(t->config));
  }
  for (auto it = by_budget.rbegin(); it != by_budget.rend(); ++it) {
    auto obs = it->second;
    const auto n = static_cast<int64_t>(obs.size());
    if (n < n_min + 2) continue;
    std::stable_sort(obs.begin(), obs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    int64_t n_good = std::max<int64_t>(n_min, static_cast<int64_t>(std::floor(bohb_.top_n_percent / 100.0 * static_cast<double>(n))));
    n_good = std::min(n_good, n - 1);
    std::vector<std::vector<double>> good, bad;
    for (int64_t i = 0; i < n; ++i) (i < n_good ? good : bad).push_back(obs[static_cast<size_t>(i)].second);
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
