// CmaesTuner: CMA-ES (Hansen's covariance matrix adaptation evolution strategy) on the unit cube of the numeric
// parameters, with IPOP restarts (population doubled at each restart), rebuilt from the stored history.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

struct CmaesParams {
  int64_t popsize = 0;     // lambda of the first run; 0 = 4 + floor(3 ln d), d = number of numeric parameters
  double sigma0 = 1.0 / 6.0;  // initial step size on the unit cube (the cube's width / 6, as Optuna)
  bool restarts = true;    // IPOP: restart with inc_popsize x the population when a run has converged
  double inc_popsize = 2.0;
  double tol_x = 1e-11;    // a run has converged when sigma * max sqrt(C_ii) falls below this (unit-cube scale) ...
  double tol_fun = 1e-12;  // ... or when the best values of its recent generations span less than this ...
  double max_condition = 1e14;  // ... or when the covariance's condition number exceeds this
  static CmaesParams from_json(const nlohmann::json& j);
};

// What this represents: CMA-ES whose whole state is a replay of the history.
// Attributes written on each proposal: cma_restart (r), cma_gen (g), cma_index (k, the slot in the generation) and,
// on every trial of a generation after the very first, cma_basis: the trial numbers (comma-separated) whose results
// updated the previous generation.
// Replay rule: the state starts from mean 0.5 (restart 0; later restarts draw a uniform mean from the seed), sigma0
// and C = I. Slot (r, g, k) is sampled from the state of its generation with the stream
// derive_seed(derive_seed(seed, r, "cma"), g, k) (resampled until inside the cube, clipped after 100 tries), so the
// point of every stored trial can be recomputed exactly. A generation that has a successor is updated with the
// basis the successor recorded; the current generation closes when it has popsize COMPLETE trials (the first by
// slot), which are then recorded as the next generation's basis. Until then ask() hands out its next unused slot
// (slots beyond popsize replace failed, pruned or still-running ones). After each close the restart criteria
// (tol_x, tol_fun, max_condition) are checked and, with restarts on, a new run begins with a larger population.
// Objective: the first one, sign-adjusted (minimize_sign); PRUNED and FAILED trials never enter an update.
// Trials without cma_* attributes (e.g. added by hand) are ignored. The same seed and params must be used on resume.
// Categorical parameters are refused with a ConfigError (CMA-ES needs an ordered space; use tpe or gp there).
// Thread safety: not thread-safe (Tuner contract).
class CmaesTuner : public Tuner {
 public:
  CmaesTuner(CmaesParams params, uint64_t seed) : params_(params), seed_(seed) {}
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "cmaes"; }

 private:
  CmaesParams params_;
  uint64_t seed_;
};

std::unique_ptr<Tuner> make_cmaes_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
