// Basic pruners: none, median/percentile (Optuna semantics), patience and threshold.
// Each reads the intermediate reports of the first objective's metric from the history, so it survives restarts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Never prunes.
class NonePruner : public Pruner {
 public:
  bool should_prune(const History&, const Trial&, int64_t) override { return false; }
  std::string name() const override { return "none"; }
};

struct PercentileParams {
  double percentile = 50.0;     // in [0, 100]; a trial is pruned when its best report is worse than this percentile
  int64_t n_startup_trials = 5; // no pruning until this many trials are COMPLETE
  int64_t n_warmup_steps = 0;   // no pruning before this step
  int64_t interval_steps = 1;   // prune only at the first report of each interval after the warm-up
  int64_t n_min_trials = 1;     // completed trials that reported at this step needed for a decision
  static PercentileParams from_json(const nlohmann::json& j, const std::string& kind);
};

// What this represents: Optuna's PercentilePruner (MedianPruner = percentile 50). At `step`, the trial's best report
// so far is compared with the given percentile of the COMPLETE trials' reports at that same step; a NaN best prunes.
// Thread safety: not thread-safe (Pruner contract).
class PercentilePruner : public Pruner {
 public:
  PercentilePruner(PercentileParams p, std::string kind) : p_(p), kind_(std::move(kind)) {}
  bool should_prune(const History& h, const Trial& trial, int64_t step) override;
  std::string name() const override { return kind_; }

 private:
  PercentileParams p_;
  std::string kind_;
};

struct PatienceParams {
  int64_t patience = 0;    // required: reports without improvement tolerated
  double min_delta = 0.0;  // tolerance: the recent best may be worse than the earlier best by this much
  static PatienceParams from_json(const nlohmann::json& j);
};

// What this represents: Optuna's PatiencePruner: prune when the best of the last patience+1 reports is worse than
// the best before them by more than min_delta. Only the trial's own reports matter.
class PatiencePruner : public Pruner {
 public:
  explicit PatiencePruner(PatienceParams p) : p_(p) {}
  bool should_prune(const History& h, const Trial& trial, int64_t step) override;
  std::string name() const override { return "patience"; }

 private:
  PatienceParams p_;
};

struct ThresholdParams {
  std::optional<double> lower;  // prune when the latest report is below it (at least one of lower/upper required)
  std::optional<double> upper;  // prune when the latest report is above it
  int64_t n_warmup_steps = 0;
  int64_t interval_steps = 1;
  static ThresholdParams from_json(const nlohmann::json& j);
};

// What this represents: Optuna's ThresholdPruner: prune when the latest report is NaN or outside [lower, upper]
// (in the metric's own units; the direction is not used).
class ThresholdPruner : public Pruner {
 public:
  explicit ThresholdPruner(ThresholdParams p) : p_(p) {}
  bool should_prune(const History& h, const Trial& trial, int64_t step) override;
  std::string name() const override { return "threshold"; }

 private:
  ThresholdParams p_;
};

// Whether `step` is the first reported step of its pruning interval (Optuna's _is_first_in_interval_step).
bool is_first_in_interval_step(const Trial& trial, const std::string& metric, int64_t step, int64_t n_warmup_steps,
                               int64_t interval_steps);

}  // namespace kestrel::tuners
