// GpTuner: Gaussian-process Bayesian optimization (Matérn-5/2 ARD, standardized outputs, MAP hyperparameters,
// log-EI / UCB / PI maximized by Sobol candidates + bounded gradient refinement) behind the Tuner interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Options of the GP tuner, each overridable from the sweep file (tuner params); an unknown key is a ConfigError.
struct GpParams {
  // Start-up: the first trials are Sobol points (trial number = index in the scrambled sequence) until this many
  // trials are COMPLETE. -1 means max(5, P + 1), P = number of non-constant parameters: one more point than
  // dimensions lets the first fit see every direction, and 5 keeps tiny spaces from fitting on 2-3 points.
  int64_t n_startup_trials = -1;
  // Acquisition: "log_ei" (default), "ucb" (mu - ucb_kappa sigma, minimized), "pi" (log probability of improvement).
  std::string acquisition = "log_ei";
  double ucb_kappa = 2.0;
  double xi = 0.0;  // improvement margin for log_ei and pi, in standardized output units
  // Acquisition search: Sobol candidates + candidates perturbed around the best trials, then the best n_refine
  // distinct ones refined (L-BFGS-B on continuous dims, neighbour moves on int/step/categorical dims).
  int64_t n_candidates = 1024;
  int64_t n_local_candidates = 256;
  int64_t n_refine = 4;
  int64_t refine_rounds = 2;
  int64_t refine_iters = 25;
  // Output warping before the fit: "yeo_johnson" (power transform fitted by maximum likelihood, then
  // re-standardized; monotone, so the argmin is unchanged) or "none" (standardization only).
  std::string output_warp = "yeo_johnson";
  // Hyperparameter fit: MAP by multi-start L-BFGS-B (see HyperPrior in gp_model.hpp for the priors and box).
  int64_t fit_restarts = 3;
  int64_t fit_iters = 60;
  double min_noise = 1e-6;  // lower bound of the noise variance (standardized units)
  bool priors = true;
  // Bounded cost. Past max_model_points COMPLETE trials the model keeps the best half (by the objective) plus a
  // seeded uniform subsample of the rest; the hyperparameters are fitted on at most max_fit_points of those chosen
  // the same way. The rest of the ask is O(n^2) per acquisition evaluation, so ask time stops growing there.
  int64_t max_model_points = 300;
  int64_t max_fit_points = 80;
  // Running (and waiting) trials: "liar_mean" (constant liar: each running trial is added to the model with the
  // mean of the standardized data as its value), "liar_min" / "liar_max" (the best / worst value), "believer"
  // (Kriging believer: the posterior mean there), or "ignore". liar_mean is the default because the optimistic
  // rules keep the region around a running trial attractive: on Branin after 12 trials, 4 parallel asks landed
  // within 0.009 of each other (unit cube) with believer and 0.006 with liar_min, against 0.068 with liar_mean
  // (tests/tuners/test_gp_tuner.cpp, RunningTrialsPushParallelProposalsApart).
  std::string pending = "liar_mean";
  // Multi-objective studies: ParEGO augmented Chebyshev scalarization with weight rho (weights drawn per trial).
  double parego_rho = 0.05;
  // Stagnation restarts (off by default): a second search stream that starts over from a fresh design when the
  // study is stuck (see GpTuner's contract). The study is stagnant when, over its last restart_patience COMPLETE
  // trials (trial-number order), its best value improved by at most restart_tol in the units the model sees (the
  // values standardized and warped as output_warp says). While it is, a share restart_share of the asks (evenly
  // spread by trial number) go to the restart stream; the others, and every ask while the study improves, are the
  // usual model over all trials. restart_patience 0 disables the mechanism, -1 means max(15, 2 (P + 1)) with P the
  // number of non-constant parameters. Off by default because the asks it takes come out of the refinement of a
  // basin that is usually the global one: on bench/tuners (15 seeds, 200 trials) it cut the Hartmann-6 runs stuck
  // in the local optimum from 4 to 1 (8 to 2 on held-out seeds) but made the medians of Rosenbrock-5 (5x) and of
  // the mixed spaces (20x) worse (bench/RESULTS.md, Gaussian-process BO). Enable it where a stuck run costs more
  // than a slower one.
  int64_t restart_patience = 0;
  double restart_tol = 0.05;
  double restart_share = 0.75;

  static GpParams from_json(const nlohmann::json& j);  // throws ConfigError
};

// What this represents: GP-based Bayesian optimization over any SearchSpace.
// - Encoding: float/log-float/int/step parameters are one input each (the space's unit-cube coordinate, int and
//   step values at their cell centres, so ints are "rounded" identically for data and candidates); categorical
//   parameters are one-hot. Inactive conditional parameters are imputed with a constant (0.5, or an all-zero
//   one-hot) for every trial and every candidate, so they never vary where they do not matter.
// - Data: COMPLETE trials with finite values only; PRUNED and FAILED trials are ignored by the model (their
//   partial or missing values say nothing reliable about the final objective). Maximized objectives are
//   sign-flipped (minimize_sign). With several objectives each ask scalarizes them with random Chebyshev weights
//   drawn for that trial number (ParEGO, Knowles 2006), after normalizing every objective to [0, 1].
// - Model: inputs as above; outputs standardized, then warped (GpParams::output_warp); constant mean, Matérn-5/2
//   ARD kernel and noise fitted by MAP (gp_model.hpp). Acquisition search: n_candidates scrambled Sobol' points of
//   the unit cube plus n_local_candidates perturbations of the 5 best trials (Gaussian steps of 0.1 and 0.01 on
//   numeric coordinates, resampled categories), every one decoded to a valid configuration before it is scored;
//   the n_refine best distinct ones are refined (see AcqSearch in gp.cpp) and the best valid unseen one proposed.
// - Constraints (search::kAttrConstraints, tuners/constraints.hpp; feasible iff every value <= 0): one GP per
//   constraint (standardized values, fitted like the objective's, without warping) and the acquisition
//   log-EI + sum_k log P(c_k(x) <= 0), the incumbent being the best FEASIBLE value; while no trial is feasible the
//   objective term is dropped and the probability of feasibility alone is maximized. The objective model still
//   sees every COMPLETE trial (an infeasible value is informative), and the subset rule ranks feasible trials
//   first. A trial without the attr counts as feasible and gives no constraint data, so an unconstrained study
//   runs exactly as before.
// - Running trials enter the model as fantasies (see GpParams::pending), via a rank-one Cholesky extension, so
//   parallel workers do not propose the same point. A proposal never repeats a COMPLETE or running configuration
//   when an unseen one is available.
// - Stagnation restarts (one objective only; TuRBO's restart rule, Eriksson et al. 2019, run beside the global
//   model instead of replacing it): a model fitted on every trial cannot leave a basin it is confidently right
//   about, such as a local optimum whose start-up neighbours made the global basin look mediocre. While the study
//   is stagnant (GpParams::restart_*), the restart stream's asks behave like a fresh study restricted to their own
//   segment: a new scrambled Sobol' design of n_startup points, then the same model and acquisition fitted on
//   that segment's COMPLETE trials only (every earlier configuration is still never repeated). Its trials carry
//   the attr kAttrRestart = segment index (1, 2, ...), so the segments are rebuilt from the stored history. A
//   segment takes its share of the asks until it is itself stagnant; then the next share ask opens a new one if the
//   study is still stagnant, else it goes to the main stream. The main stream keeps modelling every trial, restart
//   trials included, so once a segment beats the incumbent the main model (the other asks meanwhile, every ask
//   after the segment ends) exploits the new basin with all the data. Running restart trials are fantasies of
//   their segment.
// - Determinism: all randomness comes from derive_seed(seed, number, stream); nothing is cached between asks, so
//   a fresh instance given the same history proposes exactly what a long-lived one does.
// Thread safety: not thread-safe (Tuner contract).
class GpTuner : public Tuner {
 public:
  // Attr of the trials proposed by the restart stream: the segment index, "1", "2", ...
  static constexpr const char* kAttrRestart = "gp_restart";

  GpTuner(GpParams params, uint64_t seed);
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "gp"; }
  const GpParams& params() const { return params_; }

 private:
  GpParams params_;
  uint64_t seed_;
};

std::unique_ptr<Tuner> make_gp_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
