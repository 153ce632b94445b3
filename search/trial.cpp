// Trial state and direction names, and report look-ups.
// Names are the ones stored in the database and printed by the CLI (upper-case states).
#include "search/trial.hpp"

#include "common/error.hpp"

namespace kestrel::search {

std::string to_string(TrialState s) {
  switch (s) {
    case TrialState::Waiting: return "WAITING";
    case TrialState::Running: return "RUNNING";
    case TrialState::Complete: return "COMPLETE";
    case TrialState::Pruned: return "PRUNED";
    case TrialState::Failed: return "FAILED";
  }
  return "?";
}

TrialState trial_state_from_string(const std::string& s) {
  if (s == "WAITING") return TrialState::Waiting;
  if (s == "RUNNING") return TrialState::Running;
  if (s == "COMPLETE") return TrialState::Complete;
  if (s == "PRUNED") return TrialState::Pruned;
  if (s == "FAILED") return TrialState::Failed;
  throw ConfigError("unknown trial state '" + s + "'");
}

std::string to_string(Direction d) { return d == Direction::Minimize ? "minimize" : "maximize"; }

Direction direction_from_string(const std::string& s) {
  if (s == "minimize" || s == "min") return Direction::Minimize;
  if (s == "maximize" || s == "max") return Direction::Maximize;
  throw ConfigError("direction must be 'minimize' or 'maximize', got '" + s + "'");
}

std::optional<double> Trial::last_report(const std::string& metric, int64_t step) const {
  std::optional<double> out;
  for (const auto& r : reports)
    if (r.metric == metric && (step < 0 || r.step <= step)) out = r.value;
  return out;
}

std::optional<double> Trial::report_at(const std::string& metric, int64_t step) const {
  for (const auto& r : reports)
    if (r.metric == metric && r.step == step) return r.value;
  return std::nullopt;
}

}  // namespace kestrel::search
