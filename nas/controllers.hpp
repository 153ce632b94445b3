// NAS controllers behind the tuners::Tuner interface: random, regularized evolution (with an NSGA-II selection
// for several objectives), REINFORCE with a factorized policy, and Bayesian optimization over an architecture
// encoding; plus make_nas_tuner, the factory the engine calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "nas/arch_space.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::nas {

// How the architecture travels: one categorical parameter per decision of the space (ArchSpace::params(), e.g.
// "arch_1_0" .. "arch_3_2" for the NAS-Bench-201 cell), which the sweep's search space must contain, plus the
// canonical string in the proposal's attrs["arch"]. Every other parameter of the search space is an ordinary
// hyperparameter that the controller proposes alongside (see each controller).
//
// Options shared by every controller (the tuner's `params:` in the sweep file).
struct ControllerParams {
  nlohmann::json space = nlohmann::json::object();  // the ArchSpace description (make_arch_space)
  // Which proposals count as repeats, never proposed twice: "isomorphism" (the space's isomorphism rule: iso_key,
  // for cells the NAS-Bench-201 rule), "function" (function_key: also merges cells that differ only by edges
  // carrying zeros), "exact" (same canonical string) or "none". Hyperparameters are part of the key.
  std::string dedup = "isomorphism";
  bool allow_degenerate = false;  // propose cells whose output is unreachable (they cannot learn)
};

// What this represents: the common machinery of the controllers: reading the architecture and the remaining
// hyperparameters of every trial, deduplication keys, uniform proposals and the final Proposal (config + attrs).
// State is derived from the history on every ask (rebuild, don't snapshot).
// Thread safety: not thread-safe (Tuner contract).
class NasController : public tuners::Tuner {
 public:
  NasController(ControllerParams common, uint64_t seed);
  const ArchSpace& space() const { return *space_; }

  // One trial as the controllers see it. `losses` are all objectives, sign-adjusted so smaller is better.
  struct Observation {
    int64_t number = 0;
    Arch arch;
    search::Config hp;
    std::vector<double> losses;
  };
  // The history digested: COMPLETE trials with finite values (in trial-number order), the running ones, the
  // space of the non-architecture parameters and the dedup keys of every trial (any state).
  struct Context {
    search::SearchSpace hp_space;
    std::vector<Observation> done;
    std::vector<Observation> pending;
    std::unordered_set<std::string> seen;
    size_t objectives = 1;
  };
  // Throws ConfigError when the history's space lacks a decision parameter of the architecture space or has a
  // hyperparameter conditioned on one. Trials whose config does not decode are ignored.
  Context read(const tuners::History& h) const;

 protected:
  std::string key(const Arch& a, const search::Config& hp, const search::SearchSpace& hp_space) const;
  bool acceptable(const Arch& a) const;  // valid, or degenerate when allowed
  Arch draw_arch(tuners::Rng& rng) const;
  // A uniform proposal not in ctx.seen (1,000 tries); SpaceExhausted when none is found.
  tuners::Proposal random_unseen(const Context& ctx, tuners::Rng& rng) const;
  tuners::Proposal propose(const Arch& a, const search::Config& hp) const;
  // One hyperparameter of `hp` changed (uniformly chosen among the active ones): another category, or a Gaussian
  // step of sd `sigma` in the unit-cube coordinate (a fresh uniform value when the step does not change it).
  // Returns `hp` unchanged when it has no mutable parameter.
  static search::Config mutate_hp(const search::SearchSpace& hp_space, const search::Config& hp, double sigma,
                                  tuners::Rng& rng);
  static size_t active_hp_count(const search::SearchSpace& hp_space, const search::Config& hp);
  // One-hot features of the decisions that can change the function: inactive and dead decisions (Validity::dead)
  // are all zero, so architectures that differ only where nothing is computed look alike to a model.
  std::vector<double> live_onehot(const Arch& a) const;
  // Whether decision i of `a` can change the function (active and not dead).
  std::vector<bool> live_decisions(const Arch& a) const;

  ControllerParams common_;
  std::shared_ptr<const ArchSpace> space_;
  uint64_t seed_;
};

// Uniform random architectures (and hyperparameters), never repeating one already in the study (per `dedup`).
class RandomController : public NasController {
 public:
  using NasController::NasController;
  tuners::Proposal ask(const tuners::History& h, int64_t number) override;
  std::string name() const override { return "nas_random"; }
};

struct EvolutionParams {
  int64_t population = 20;  // P: the population is the P newest COMPLETE trials (aging); random until P exist
  int64_t sample_size = 5;  // S: tournament size; the best of S uniform draws from the population is the parent
  // "auto" (tournament on the first objective for one objective, NSGA-II for several), "tournament" or "nsga2":
  // the population is then the P best COMPLETE trials by (front rank, crowding distance) (elitist, no aging),
  // and the parent the best of S by the crowded comparison.
  std::string selection = "auto";
  double hp_sigma = 0.2;  // numeric hyperparameter mutation: Gaussian step of this sd in the unit-cube encoding
  // How the parent's one edit is chosen. "thompson": every candidate edit of the parent (all its single-decision
  // neighbours, or `hp_candidates` hyperparameter edits) is scored by one draw from the posterior of a Bayesian
  // linear model of the first objective on live one-hot features plus hyperparameter coordinates (fitted to every
  // COMPLETE trial; prior and noise precision by evidence), and the best-scoring edit is the child (predictor-
  // guided mutation as in NPENAS, Wei et al. 2022, with Thompson sampling for exploration). "uniform": a uniformly
  // chosen edit (Real et al.'s original). Several objectives (NSGA-II selection) always use "uniform".
  std::string mutation = "thompson";
  int64_t hp_candidates = 8;
  static EvolutionParams from_json(const nlohmann::json& j, ControllerParams& common);
};

// Regularized (aging) evolution (Real et al. 2019). A child is its parent with one edit: a single-decision change
// of the architecture that is valid and computes a different function (ArchSpace::neighbors), or, with
// probability H / (D + H) for H active hyperparameters and D active decisions, one hyperparameter changed; which
// edit is chosen by EvolutionParams::mutation.
// Randomness: derive_seed(seed, number), so a resumed sweep proposes what an uninterrupted one would.
class EvolutionController : public NasController {
 public:
  EvolutionController(EvolutionParams p, ControllerParams common, uint64_t seed);
  tuners::Proposal ask(const tuners::History& h, int64_t number) override;
  std::string name() const override { return "nas_evolution"; }

 private:
  EvolutionParams p_;
};

struct ReinforceParams {
  // Step on the logits per trial, scaled by the normalized advantage. 0.5: on held-out synthetic functions (seeds
  // 100-159 and 200-259 of nas_bench, two interaction strengths) 0.5 beat 0.2 and 0.3 at 50 and 100 trials.
  double learning_rate = 0.5;
  double baseline_decay = 0.9;   // moving average of the reward (the baseline) and of its squared deviation
  double entropy_weight = 0.01;  // weight of the entropy bonus's gradient in every update
  // Which decisions of a trial get its update: "live" (active and not dead: an edge on no input-output path
  // did not affect the reward) or "active" (every active decision).
  std::string credit = "live";
  static ReinforceParams from_json(const nlohmann::json& j, ControllerParams& common);
};

// REINFORCE (Williams 1992; Zoph and Le 2017) with a factorized policy: independent softmax logits per decision,
// zero at the start (uniform). Replaying the COMPLETE trials in trial-number order, each gives reward r = -loss of
// the first objective; advantage (r - b) / s with b and s^2 exponential moving averages of r and (r - b)^2
// (no update for the first trial; clipped to [-5, 5]), so the learning rate does not depend on the metric's scale.
// Update on each active decision: theta += lr (adv (onehot(a) - p) + entropy_weight dH/dtheta).
// Replay makes the state a pure function of the history: resume gives the same policy. Hyperparameters that are
// not architecture decisions are drawn uniformly. Multi-objective studies: the first objective only.
class ReinforceController : public NasController {
 public:
  ReinforceController(ReinforceParams p, ControllerParams common, uint64_t seed);
  tuners::Proposal ask(const tuners::History& h, int64_t number) override;
  std::string name() const override { return "nas_reinforce"; }
  // The policy after replaying the history: probabilities per decision.
  std::vector<std::vector<double>> policy(const tuners::History& h) const;

 private:
  std::vector<std::vector<double>> replay(const Context& ctx) const;  // logits
  ReinforceParams p_;
};

struct BayesParams {
  int64_t n_startup = 10;         // uniform proposals until this many trials are COMPLETE
  std::string encoding = "onehot";  // an ArchSpace encoding: "onehot" or (cells) "path"
  std::string acquisition = "ei";   // "ei" (expected improvement) or "ucb" (mean - kappa sd, minimized)
  double ucb_kappa = 2.0;
  int64_t n_random = 256;         // uniform candidates per ask
  int64_t n_parents = 10;         // all single-edit neighbours of the best this many trials are candidates,
                                  // plus the neighbours of the best one's neighbours
  int64_t max_points = 400;       // the model keeps the newest this many COMPLETE trials
  static BayesParams from_json(const nlohmann::json& j, ControllerParams& common);
};

// Bayesian optimization over an architecture encoding (BANANAS-like candidate generation, White et al. 2021):
// a Gaussian process on standardized losses with the kernel exp(-d / l), d = the L1 distance of the encodings
// (half of it for one-hot, i.e. the number of differing decisions) plus the L1 distance of the hyperparameters'
// unit-cube coordinates. Both l and the noise variance are chosen per ask from a small grid by marginal
// likelihood. Candidates: uniform draws, single edits of the best trials and double edits of the best one, minus
// everything already in the study; the one with the best acquisition is proposed. Running trials join the model
// with the mean value (constant liar), so parallel workers spread out. Multi-objective: the first objective.
class BayesController : public NasController {
 public:
  BayesController(BayesParams p, ControllerParams common, uint64_t seed);
  tuners::Proposal ask(const tuners::History& h, int64_t number) override;
  std::string name() const override { return "nas_bo"; }

 private:
  BayesParams p_;
};

// The recommended default ("nas_auto"): for one objective the Bayesian controller (BayesParams defaults), for
// several the evolution controller with NSGA-II selection (EvolutionParams defaults). Why: on the synthetic cell
// benchmark (bench/RESULTS.md, NAS) the Bayesian controller has the lowest regret at 50 evaluations and ties the
// model-guided evolution at 100 and 300, while only evolution handles several objectives. Both rebuild their
// state from the history, so choosing per ask by the history's objective count keeps resume exact.
class AutoController : public NasController {
 public:
  AutoController(ControllerParams common, uint64_t seed);
  tuners::Proposal ask(const tuners::History& h, int64_t number) override;
  std::string name() const override { return "nas_auto"; }

 private:
  BayesController bo_;
  EvolutionController evolution_;
};

// The engine's factory for NAS controllers. kind: nas_auto, nas_random, nas_evolution, nas_reinforce, nas_bo. `params`
// holds ControllerParams' keys (space, dedup, allow_degenerate) and the kind's own; unknown keys: ConfigError.
std::unique_ptr<tuners::Tuner> make_nas_tuner(const std::string& kind, const nlohmann::json& params, uint64_t seed);
std::vector<std::string> nas_tuner_kinds();
bool is_nas_tuner(const std::string& kind);

}  // namespace kestrel::nas
