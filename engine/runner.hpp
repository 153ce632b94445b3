// optimize(): the loop that keeps N trials in flight (ask / evaluate / tell) until a budget ends.
// It is a loop over the Study's ask/tell API and nothing more.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "engine/checkpoints.hpp"
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
  // The checkpoint lifecycle (engine/checkpoints.hpp), on when runs_dir is set: each trial gets the empty folder
  // <runs_dir>/<study>/trial_<n>/checkpoint (EvalContext::checkpoint_dir, KESTREL_CHECKPOINT_DIR) and, when its
  // tuner names a parent (attr restore_from), that parent's verified folder (EvalContext::restore_from,
  // KESTREL_RESTORE_FROM). After the trial the folder is sealed into the trial's "checkpoint" attr (or removed
  // when the evaluator left it empty). keep_best > 0 then deletes the folders of finished trials that are neither
  // among the best keep_best nor pinned (restored by a running trial, or by a proposal the tuner may still make).
  bool checkpoints = true;
  CheckpointPolicy checkpoint_policy;
  const std::atomic<bool>* stop = nullptr;           // external stop request (e.g. SIGINT handler)
  std::function<void(const Trial&)> on_trial_end;    // called after each trial is finished (any thread, serialized)
};

struct RunSummary {
  int64_t completed = 0, pruned = 0, failed = 0;  // in this run
  std::string stop_reason;                        // "n_trials", "timeout", "target", "max_failed", "exhausted", "stopped"
  double elapsed_s = 0.0;
};

// Requires: the study and evaluator outlive the call. Guarantees: every trial asked in this run is finished
// (told) before return; a failing trial fails alone (a missing or corrupt parent checkpoint included: that trial
// FAILS with the reason, the sweep goes on). A trial's checkpoint is sealed before any trial of this process
// restores from it; one sealed by another process is waited for up to a few seconds.
RunSummary optimize(Study& study, Evaluator& evaluator, const RunOptions& options);

}  // namespace kestrel::engine
