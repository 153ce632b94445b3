// TpeTuner: the Tree-structured Parzen Estimator (Bergstra et al. 2011) with Optuna's refinements: the gamma split,
// ramped weights for old trials, a prior kernel, magic-clip bandwidths, discrete kernels for int/step parameters,
// categorical kernels, a multivariate (joint) mode with conditional groups, a constant liar for running trials, and
// constraints (infeasible trials ranked by violation after the feasible ones).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

struct TpeParams {
  int64_t n_startup_trials = 10;  // COMPLETE + PRUNED trials drawn by `startup` before the model takes over
  int64_t n_ei_candidates = 24;   // samples from l(x) scored by log l(x) - log g(x)
  double gamma = 0.10;            // n_below = min(ceil(gamma * n), gamma_max), n = COMPLETE + PRUNED trials
  int64_t gamma_max = 25;
  double prior_weight = 1.0;      // weight of the prior kernel (mean 0.5, sd 1 on the unit scale; uniform categories)
  bool consider_magic_clip = true;  // lower-bound bandwidths by range / min(100, 1 + n_kernels)
  bool consider_endpoints = false;  // whether the domain ends widen the first/last kernels (univariate bandwidths)
  int64_t weights_flat = 25;      // the newest trials weigh 1; older ones ramp linearly down to 1/n
  // Joint kernels over each group of parameters that are active together (the unconditional ones form one group,
  // each distinct condition another), instead of one independent estimator per parameter. Optuna's default is
  // false before 5.0; joint modelling captures interactions (Optuna 5 made it its default too).
  bool multivariate = true;
  // Kernel bandwidths: "neighbor" (each kernel as wide as the gap to its farther neighbour in that dimension, the
  // rule of Optuna 5 in both modes) or "scott" (one width 0.2 n^(-1/(d+4)) per group, Optuna 3-4's multivariate
  // rule; on our benchmark it lost to "neighbor" at 200 trials on every function).
  std::string bandwidth = "neighbor";
  bool constant_liar = true;      // running trials count as the worst (in the "above" set), so workers spread out
  std::string startup = "random"; // "random" or "sobol" for the start-up trials
  static TpeParams from_json(const nlohmann::json& j);
};

// What this represents: TPE on the unit-cube encoding of the space (continuous and log parameters are affine in
// it, int/step parameters are cells of equal width, categorical ones are indices). State is derived from the
// history on every ask; encoded finished trials are cached by trial number (they are immutable).
// Objective: the first one (sign-adjusted). PRUNED trials rank after all COMPLETE ones, by (last step reached,
// value there); FAILED trials are ignored; with constant_liar RUNNING/WAITING trials join the "above" set.
// Constraints (search::kAttrConstraints, tuners/constraints.hpp): a finished trial whose constraints are violated
// is infeasible and ranks after every feasible COMPLETE and PRUNED trial, by total violation (Optuna's rule), so it
// lands in the "above" set unless too few trials are feasible; trials without the attr are unaffected.
// Randomness: derive_seed(seed, number), so proposals do not depend on worker order. In a finite space a
// configuration already in the history is replaced by a seeded random unseen one.
// Thread safety: not thread-safe (Tuner contract).
class TpeTuner : public Tuner {
 public:
  TpeTuner(TpeParams params, uint64_t seed);
  ~TpeTuner() override;
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "tpe"; }

 private:
  struct Cache;
  TpeParams params_;
  uint64_t seed_;
  std::unique_ptr<Tuner> startup_;
  std::unique_ptr<Cache> cache_;
};

std::unique_ptr<Tuner> make_tpe_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
