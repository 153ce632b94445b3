// Multi-fidelity and population-based search: the factories for ASHA, Hyperband, BOHB and PBT, the attribute keys
// their trials carry in the store, and the hooks the engine needs (checkpoint pins, "not ready yet").
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Trial attributes written by the multi-fidelity tuners. Scheduler state is derived from these alone (plus the
// trials' states and values), so a resumed sweep makes the same decisions as an uninterrupted one.
inline constexpr const char* kAttrBracket = "bracket";              // Hyperband/BOHB bracket index (0, 1, ...)
inline constexpr const char* kAttrRung = "rung";                    // rung inside the bracket (0 = first)
inline constexpr const char* kAttrPromotedFrom = "promoted_from";   // trial number this one continues
// The trial number whose checkpoint this trial starts from. The engine's checkpoint lifecycle
// (engine/checkpoints.hpp) resolves it to KESTREL_RESTORE_FROM; without a checkpoint the trial reruns from scratch.
inline constexpr const char* kAttrRestoreFrom = "restore_from";
inline constexpr const char* kAttrBudget = "budget";                // written by Study::ask from Proposal::budget

// Thrown by ask() when the tuner has nothing to propose until some running trial finishes (synchronous PBT waiting
// for the end of a generation, or more workers than the schedule can keep busy). Not an error: the caller should
// wait for a running trial to finish and ask again. It is never thrown when no trial is running.
class NotReady : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What this represents: a tuner whose later proposals may restore from the checkpoints of finished trials
// (promotions, PBT exploitation). The engine's retention policy must keep those checkpoints.
// Thread safety: as Tuner (not thread-safe).
class CheckpointUser {
 public:
  virtual ~CheckpointUser() = default;
  // Ensures: every finished trial whose checkpoint a future proposal could name in `restore_from`, given the
  //   history `h` (a superset is allowed; a missing member is a bug).
  virtual std::set<int64_t> may_restore(const History& h) const = 0;
};

// Factories. Kinds: tuners "asha", "hyperband", "bohb", "pbt"; pruner "asha" (alias "successive_halving").
// Return nullptr for a kind they do not know (so the main registry can fall back to them); throw ConfigError for
// bad options of a known kind.
std::unique_ptr<Pruner> make_multifidelity_pruner(const std::string& kind, const nlohmann::json& params);
std::unique_ptr<Tuner> make_multifidelity_tuner(const std::string& kind, const nlohmann::json& params,
                                                uint64_t seed);
std::vector<std::string> multifidelity_tuner_kinds();
std::vector<std::string> multifidelity_pruner_kinds();

}  // namespace kestrel::tuners
