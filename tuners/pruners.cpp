// Basic pruners with Optuna's semantics (median/percentile, patience, threshold), reading reports of the first
// objective's metric. Percentiles use linear interpolation between order statistics, as numpy.nanpercentile does.
#include "tuners/pruners.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/error.hpp"
#include "tuners/params.hpp"

namespace kestrel::tuners {
namespace {

const std::string& metric_of(const History& h) {
  static const std::string kDefault = "value";
  return h.objectives.empty() ? kDefault : h.objectives[0].name;
}

bool maximize(const History& h) {
  return !h.objectives.empty() && h.objectives[0].direction == search::Direction::Maximize;
}

// Reports of `metric` with step <= `step`, in step order.
std::vector<const search::Report*> reports_upto(const Trial& t, const std::string& metric, int64_t step) {
  std::vector<const search::Report*> out;
  for (const auto& r : t.reports)
    if (r.metric == metric && r.step <= step) out.push_back(&r);
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->step < b->step; });
  return out;
}

double nan_percentile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

void check_steps(const ParamReader& r, int64_t n_warmup_steps, int64_t interval_steps) {
  r.require(n_warmup_steps >= 0, "n_warmup_steps", "must be >= 0");
  r.require(interval_steps >= 1, "interval_steps", "must be >= 1");
}

}  // namespace

bool is_first_in_interval_step(const Trial& trial, const std::string& metric, int64_t step, int64_t n_warmup_steps,
                               int64_t interval_steps) {
  int64_t nearest_lower = ((step - n_warmup_steps) / interval_steps) * interval_steps + n_warmup_steps;
  int64_t second_last = -1;
  for (const auto& r : trial.reports)
    if (r.metric == metric && r.step != step && r.step > second_last && r.step <= step) second_last = r.step;
  return second_last < nearest_lower;
}

PercentileParams PercentileParams::from_json(const nlohmann::json& j, const std::string& kind) {
  PercentileParams p;
  ParamReader r("pruner '" + kind + "'", j);
  if (kind != "median") r.get("percentile", p.percentile);
  r.get("n_startup_trials", p.n_startup_trials);
  r.get("n_warmup_steps", p.n_warmup_steps);
  r.get("interval_steps", p.interval_steps);
  r.get("n_min_trials", p.n_min_trials);
  r.finish();
  r.require(p.percentile >= 0 && p.percentile <= 100, "percentile", "must be in [0, 100]");
  r.require(p.n_startup_trials >= 0, "n_startup_trials", "must be >= 0");
  r.require(p.n_min_trials >= 1, "n_min_trials", "must be >= 1");
  check_steps(r, p.n_warmup_steps, p.interval_steps);
  return p;
}

bool PercentilePruner::should_prune(const History& h, const Trial& trial, int64_t step) {
  const std::string& metric = metric_of(h);
  auto completed = h.complete();
  if (completed.empty() || static_cast<int64_t>(completed.size()) < p_.n_startup_trials) return false;
  auto mine = reports_upto(trial, metric, step);
  if (mine.empty()) return false;
  int64_t last_step = mine.back()->step;
  if (last_step < p_.n_warmup_steps) return false;
  if (!is_first_in_interval_step(trial, metric, last_step, p_.n_warmup_steps, p_.interval_steps)) return false;
  const bool max = maximize(h);
  // Best report so far (NaNs ignored); all-NaN means the trial is broken.
  double best = std::numeric_limits<double>::quiet_NaN();
  for (auto* r : mine)
    if (!std::isnan(r->value) && (std::isnan(best) || (max ? r->value > best : r->value < best))) best = r->value;
  if (std::isnan(best)) return true;
  std::vector<double> others;
  for (const Trial* t : completed)
    if (auto v = t->report_at(metric, last_step)) others.push_back(*v);
  if (static_cast<int64_t>(others.size()) < p_.n_min_trials) return false;
  double q = nan_percentile(std::move(others), max ? 100.0 - p_.percentile : p_.percentile);
  if (std::isnan(q)) return false;
  return max ? best < q : best > q;
}

PatienceParams PatienceParams::from_json(const nlohmann::json& j) {
  PatienceParams p;
  ParamReader r("pruner 'patience'", j);
  bool has = j.is_object() && j.contains("patience");
  r.get("patience", p.patience);
  r.get("min_delta", p.min_delta);
  r.finish();
  r.require(has, "patience", "is required (number of reports without improvement to tolerate)");
  r.require(p.patience >= 0, "patience", "must be >= 0");
  r.require(p.min_delta >= 0, "min_delta", "must be >= 0");
  return p;
}

bool PatiencePruner::should_prune(const History& h, const Trial& trial, int64_t step) {
  auto mine = reports_upto(trial, metric_of(h), step);
  if (static_cast<int64_t>(mine.size()) <= p_.patience + 1) return false;
  const bool max = maximize(h);
  size_t split = mine.size() - static_cast<size_t>(p_.patience) - 1;
  auto best_of = [&](size_t b, size_t e) {
    double best = std::numeric_limits<double>::quiet_NaN();
    for (size_t i = b; i < e; ++i) {
      double v = mine[i]->value;
      if (!std::isnan(v) && (std::isnan(best) || (max ? v > best : v < best))) best = v;
    }
    return best;
  };
  double before = best_of(0, split), after = best_of(split, mine.size());
  if (std::isnan(before)) return false;
  if (std::isnan(after)) return true;  // nothing but NaN lately: no improvement
  return max ? before - p_.min_delta > after : before + p_.min_delta < after;
}

ThresholdParams ThresholdParams::from_json(const nlohmann::json& j) {
  ThresholdParams p;
  ParamReader r("pruner 'threshold'", j);
  r.get("lower", p.lower);
  r.get("upper", p.upper);
  r.get("n_warmup_steps", p.n_warmup_steps);
  r.get("interval_steps", p.interval_steps);
  r.finish();
  r.require(p.lower || p.upper, "lower", "or 'upper' must be given");
  r.require(!(p.lower && p.upper && *p.lower > *p.upper), "lower", "must not exceed 'upper'");
  check_steps(r, p.n_warmup_steps, p.interval_steps);
  return p;
}

bool ThresholdPruner::should_prune(const History& h, const Trial& trial, int64_t step) {
  const std::string& metric = metric_of(h);
  auto mine = reports_upto(trial, metric, step);
  if (mine.empty()) return false;
  int64_t last_step = mine.back()->step;
  if (last_step < p_.n_warmup_steps) return false;
  if (!is_first_in_interval_step(trial, metric, last_step, p_.n_warmup_steps, p_.interval_steps)) return false;
  double v = mine.back()->value;
  if (std::isnan(v)) return true;
  return (p_.lower && v < *p_.lower) || (p_.upper && v > *p_.upper);
}

}  // namespace kestrel::tuners
