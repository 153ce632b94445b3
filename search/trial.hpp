// Trial: the record of one evaluation (states, values, intermediate reports, failure reason), and objectives.
// A finished trial (COMPLETE, PRUNED, FAILED) is an immutable snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "search/space.hpp"

namespace kestrel::search {

enum class TrialState { Waiting, Running, Complete, Pruned, Failed };
std::string to_string(TrialState s);
TrialState trial_state_from_string(const std::string& s);  // throws ConfigError
inline bool is_finished(TrialState s) {
  return s == TrialState::Complete || s == TrialState::Pruned || s == TrialState::Failed;
}

enum class Direction { Minimize, Maximize };
std::string to_string(Direction d);
Direction direction_from_string(const std::string& s);  // "minimize"/"maximize", throws ConfigError

struct Objective {
  std::string name = "value";
  Direction direction = Direction::Minimize;
};

// One intermediate report: (step, metric name) -> value.
struct Report {
  int64_t step = 0;
  std::string metric;
  double value = 0.0;
};

struct Trial {
  int64_t id = -1;       // store-wide id
  int64_t number = -1;   // per-study sequence number, never reused
  TrialState state = TrialState::Waiting;
  Config config;
  std::vector<double> values;           // one per objective once COMPLETE
  std::vector<Report> reports;          // ordered by (step, metric)
  std::map<std::string, std::string> attrs;  // user and system attributes (JSON text or plain)
  std::string fail_reason;              // why FAILED or PRUNED
  std::string worker;                   // worker that ran it
  double start_time = 0.0;              // unix seconds
  double end_time = 0.0;
  double heartbeat = 0.0;

  // Last reported value of `metric` at or before `step` (or the last of all steps when step < 0).
  std::optional<double> last_report(const std::string& metric, int64_t step = -1) const;
  std::optional<double> report_at(const std::string& metric, int64_t step) const;
};

// Sign that turns "better" into "smaller": +1 for minimize, -1 for maximize.
inline double minimize_sign(Direction d) { return d == Direction::Minimize ? 1.0 : -1.0; }

// Constraints of a trial (Optuna's convention): the attr holds a JSON array of numbers, one per
// constraint of the sweep; the trial is feasible when every number is <= 0. Written by the engine
// when the trial completes; tuners that model constraints read it. Absent = no constraints.
inline constexpr const char* kAttrConstraints = "constraints";
// A trial copied from another study to warm-start this one: the attr holds the source study's
// name and trial number as JSON. Such trials are finished priors, never rerun.
inline constexpr const char* kAttrWarmStart = "warm_start";

}  // namespace kestrel::search
