// optimize(): the loop that keeps N trials in flight (ask / evaluate / tell) until a budget ends.
// It is a loop over the Study's ask/tell API and nothing more.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "engine/evaluator.hpp"
#include "engine/study.hpp"

namespace kestrel::engine {

struct RunOptions {
  int64_t n_trials = 0;             // stop when the study holds this many COMPLETE+PRUNED trials (0 = no limit)
  double timeout_s = 0.0;           // wall-time budget of this run in seconds (0 = none); no new trials after it
  std::optional<double> target;     // stop once the best value reaches it (first objective, in its direction)
  int64_t max_failed = 0;           // stop after this many FAILED trials in this run (0 = no limit)
  int n_jobs = 1;                   // trials in flight at once
  std::string runs_dir = "kestrel_runs";  // per-trial folders: <runs_dir>/<study>/trial_<number>
  const std::atomic<bool>* stop = nullptr;           // external stop request (e.g. SIGINT handler)
  std::function<void(const Trial&)> on_trial_end;    // called after each trial is finished (any thread, serialized)
};

struct RunSummary {
  int64_t completed = 0, pruned = 0, failed = 0;  // in this run
  std::string stop_reason;                        // "n_trials", "timeout", "target", "max_failed", "exhausted", "stopped"
  double elapsed_s = 0.0;
};

// Requires: the study and evaluator outlive the call. Guarantees: every trial asked in this run is finished
// (told) before return; a failing trial fails alone.
RunSummary optimize(Study& study, Evaluator& evaluator, const RunOptions& options);

}  // namespace kestrel::engine
