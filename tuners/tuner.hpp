// Tuner and Pruner: the two interfaces every search algorithm and early-stopping rule implements,
// plus the History view they read (the study's trials, rebuilt from the store).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/space.hpp"
#include "search/trial.hpp"

namespace kestrel::tuners {

using search::Config;
using search::Objective;
using search::SearchSpace;
using search::Trial;
using search::TrialState;

// What this represents: a read-only view of one study at the moment of a decision: its space, objectives and
// every trial (finished, running and waiting), ordered by trial number. The pointed-to trials are owned by the
// caller (the engine's cache) and stay valid for the duration of the call only.
struct History {
  const SearchSpace* space = nullptr;
  std::vector<Objective> objectives;
  std::vector<const Trial*> trials;

  // Convenience filters (in trial-number order).
  std::vector<const Trial*> with_state(TrialState s) const;
  std::vector<const Trial*> complete() const { return with_state(TrialState::Complete); }
  std::vector<const Trial*> running() const;  // RUNNING and WAITING
};

// What a tuner proposes. `attrs` are stored with the trial (e.g. a Hyperband bracket); `budget`, when set, is the
// resource (epochs, steps, ...) the evaluator should spend.
struct Proposal {
  Config config;
  std::map<std::string, std::string> attrs;
  std::optional<double> budget;
};

// What this represents: one search algorithm. Its state is a pure function of (seed, params, history): a resumed
// sweep rebuilds it from the stored trials and proposes exactly what an uninterrupted one would. An implementation
// may cache derived state between calls for speed, as long as the proposals stay identical to a fresh rebuild.
//
// Thread safety: not thread-safe; the engine serializes calls.
class Tuner {
 public:
  virtual ~Tuner() = default;
  // Requires: h.trials holds every trial of the study (running ones included, so parallel workers can avoid
  //   proposing the same point); `number` is the number the new trial will get.
  // Ensures: the returned config passes h.space->check(); the same (seed, history, number) gives the same proposal.
  // Throws ConfigError when the space cannot be handled (e.g. grid search over an infinite space) and
  //   SpaceExhausted when a finite space has no unproposed configuration left.
  virtual Proposal ask(const History& h, int64_t number) = 0;
  virtual std::string name() const = 0;
};

// What this represents: an early-stopping rule over intermediate reports (the metric of the first objective,
// in its direction). State lives in the reports of the history (i.e. in the store), so pruners survive restarts.
// Thread safety: not thread-safe; the engine serializes calls.
class Pruner {
 public:
  virtual ~Pruner() = default;
  // Requires: `trial` is RUNNING and h.trials includes it with its reports up to `step`.
  // Ensures: true means the trial should stop now and be recorded PRUNED.
  virtual bool should_prune(const History& h, const Trial& trial, int64_t step) = 0;
  virtual std::string name() const = 0;
};

// No finite-space configuration left to propose.
class SpaceExhausted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Factories. `params` holds the algorithm's options (from the sweep file); an unknown key or kind throws
// ConfigError naming the valid ones.
std::unique_ptr<Tuner> make_tuner(const std::string& kind, const nlohmann::json& params, uint64_t seed);
std::unique_ptr<Pruner> make_pruner(const std::string& kind, const nlohmann::json& params);
std::vector<std::string> tuner_kinds();
std::vector<std::string> pruner_kinds();

// Seeded RNG seed for a (sweep seed, trial number, stream) triple (splitmix64), so proposals don't depend on
// the order in which workers ask.
uint64_t derive_seed(uint64_t seed, int64_t number, uint64_t stream = 0);

}  // namespace kestrel::tuners
