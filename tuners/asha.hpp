// Asynchronous successive halving (Li et al., MLSys 2020) in its two forms: a budget-owning tuner that promotes
// configurations as new trials, and a pruner that stops trials at rungs (Optuna's SuccessiveHalvingPruner semantics).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tuners/multifidelity.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::tuners {

struct AshaParams {
  double min_resource = 1.0;           // budget of rung 0 is min_resource * eta^min_early_stopping_rate
  double max_resource = 81.0;          // no rung beyond this budget
  int64_t eta = 3;                     // reduction factor: the top 1/eta of a rung may be promoted
  int64_t min_early_stopping_rate = 0; // s: skips the s smallest rungs
  // Rank check of the low rungs (off while min_rank_pairs is 0): rung k is trusted while Kendall's tau between the
  // rung-k values of the configurations promoted from it and their rung-(k+1) values is >= min_rank_agreement, or
  // while they form fewer than min_rank_pairs pairs. New configurations start at the lowest rung from which every
  // rung up to the second-highest is trusted, so when a cheap budget ranks unlike the next (learning curves that
  // cross late), new configurations skip it. The same consistency test PASHA (Bohdal et al., ICLR 2023) applies
  // to the top two rungs to grow max_resource, here applied from the bottom to raise the starting budget.
  int64_t min_rank_pairs = 0;
  double min_rank_agreement = 0.4;
  static AshaParams from_json(const nlohmann::json& j);
};

// Rung budgets of ASHA: min_resource * eta^(s + k) for k = 0.. while <= max_resource. ConfigError when empty.
std::vector<double> asha_rungs(const AshaParams& p);

// What this represents: ASHA as a tuner. On ask(), from the highest rung down, a successful trial of rung k that is
// among the best floor(n_k / eta) finished trials of rung k and not yet promoted is promoted: a new trial with the
// same configuration, budget of rung k+1, attrs rung, promoted_from and restore_from = its number. Otherwise a new
// seeded random configuration starts in rung 0, or with the rank check on, in start_rung(history). Trials carry
// attrs bracket = 0 and rung. Never waits (no NotReady); runs until the runner's budget ends. State is derived from
// the history, so resume repeats the same decisions.
// Thread safety: not thread-safe (Tuner contract).
class AshaTuner : public Tuner, public CheckpointUser {
 public:
  AshaTuner(AshaParams params, uint64_t seed);
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "asha"; }
  std::set<int64_t> may_restore(const History& h) const override;
  const std::vector<double>& rungs() const { return rungs_; }
  // The rung new configurations start in: 0, or with min_rank_pairs > 0 the lowest k such that every rung j in
  // [k, second-highest) passes the rank check against rung j+1 (an untested rung passes). Decided afresh from the
  // history at every ask, so it can move back down when later results restore a rung's agreement.
  size_t start_rung(const History& h) const;

 private:
  AshaParams params_;
  uint64_t seed_;
  std::vector<double> rungs_;
};

std::unique_ptr<Tuner> make_asha_tuner(const nlohmann::json& params, uint64_t seed);

struct AshaPrunerParams {
  int64_t min_resource = 1;            // step of the first rung (before the early-stopping-rate offset)
  int64_t reduction_factor = 3;        // eta
  int64_t min_early_stopping_rate = 0; // s: rung k sits at step min_resource * eta^(s + k)
  static AshaPrunerParams from_json(const nlohmann::json& j, const std::string& kind = "asha");
};

// What this represents: successive halving over intermediate reports, asynchronous (no trial waits for another).
// When a trial's report first reaches or passes a rung step, its value there is compared with the rung values of
// every trial that has reached that rung (its own included; a trial's rung value is its first report at or after the
// rung step): it continues when it is among the best floor(n / eta) of them, or the single best while n < eta
// (Optuna's rule), else it is pruned. The rung results are the stored reports, so the rule survives restarts.
// Thread safety: not thread-safe (Pruner contract).
class AshaPruner : public Pruner {
 public:
  AshaPruner(AshaPrunerParams p, std::string kind) : p_(p), kind_(std::move(kind)) {}
  bool should_prune(const History& h, const Trial& trial, int64_t step) override;
  std::string name() const override { return kind_; }

 private:
  AshaPrunerParams p_;
  std::string kind_;
};

}  // namespace kestrel::tuners
