// Checkpoints: the engine-owned checkpoint lifecycle of trials: one folder per trial, the KESTREL_CHECKPOINT_DIR /
// KESTREL_RESTORE_FROM contract, sealing (a manifest in the store), pinning and keep-best-k retention.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "search/trial.hpp"

namespace kestrel::engine {

class Study;

// Environment variables an evaluator reads: where to write this trial's checkpoint, and (when set) the folder of
// the checkpoint to start from. Both are absolute paths.
inline constexpr const char* kCheckpointDirEnv = "KESTREL_CHECKPOINT_DIR";
inline constexpr const char* kRestoreFromEnv = "KESTREL_RESTORE_FROM";

// Trial attributes of the lifecycle.
inline constexpr const char* kAttrCheckpoint = "checkpoint";                  // manifest JSON, written by seal()
inline constexpr const char* kAttrCheckpointPinned = "checkpoint.pinned";     // "1": never deleted by retention
inline constexpr const char* kAttrCheckpointDeleted = "checkpoint.deleted";   // retention removed it (reason)

struct CheckpointPolicy {
  // Keep the checkpoints of the best keep_best COMPLETE trials (first objective) plus every pinned one; delete the
  // rest once their trial finished. 0 keeps everything.
  int64_t keep_best = 0;
};

// What a trial is started with.
struct CheckpointLaunch {
  std::string checkpoint_dir;               // created, empty: the trial writes its checkpoint here
  std::optional<std::string> restore_from;  // the parent's checkpoint folder; nullopt = start from scratch
  std::map<std::string, std::string> env;   // KESTREL_CHECKPOINT_DIR and, when restoring, KESTREL_RESTORE_FROM
};

// What this represents: the checkpoints of one study, stored under `root` (the runner's <runs_dir>/<study>): trial
// n writes to root/trial_<n>/checkpoint. A trial whose attrs hold restore_from = m (tuners/multifidelity.hpp) starts
// from trial m's folder. After a trial ends, seal() fingerprints its folder (every file's size and FNV-1a hash) into
// the trial's "checkpoint" attr, so a later restore can tell a missing or corrupt checkpoint (an EvalError that fails
// only the restoring trial) from an evaluator that writes no checkpoints (the restoring trial reruns from scratch).
//
// Pinning: a checkpoint is pinned when a RUNNING or WAITING trial restores from it, when its trial has the attr
// checkpoint.pinned = 1, or when the caller names it as a future reference (a tuner's CheckpointUser::may_restore).
// Retention never deletes a pinned checkpoint, nor one of a trial that has not finished.
//
// Thread safety: the object is immutable; methods for different trials may run concurrently. Retention must not
// race with prepare() of a trial restoring from a checkpoint it might delete: the runner calls it between trials,
// with the pins of the trials then running (the tuner's future references cover the ones not yet asked).
class Checkpoints {
 public:
  explicit Checkpoints(std::string root, CheckpointPolicy policy = {});

  const std::string& root() const { return root_; }
  std::string dir_of(int64_t number) const;  // root/trial_<n>/checkpoint (absolute)

  // Before trial `t` runs: creates its checkpoint folder (emptied if a previous attempt left files) and resolves its
  // restore_from attr against `trials` (the study's trials). Throws EvalError, naming the parent trial and the
  // problem, when the parent does not exist, never sealed a checkpoint it had started writing, was deleted by
  // retention, or no longer matches its manifest (missing file, size or hash mismatch).
  CheckpointLaunch prepare(const search::Trial& t, const std::vector<search::Trial>& trials) const;

  // After trial `number` ended (any state): the manifest JSON to store as its "checkpoint" attr. An absent or empty
  // folder gives {"files": []} (the evaluator writes no checkpoints).
  std::string seal(int64_t number) const;

  // Checks trial `parent`'s folder against its stored manifest; throws EvalError on any difference.
  void verify(const search::Trial& parent) const;

  std::set<int64_t> pinned(const std::vector<search::Trial>& trials, const std::set<int64_t>& future = {}) const;

  // Deletes the checkpoint folders that retention does not keep (see the class comment); returns their trial
  // numbers. The caller records kAttrCheckpointDeleted on each (the overload taking a Study does).
  std::vector<int64_t> apply_retention(const std::vector<search::Trial>& trials, const search::Objective& objective,
                                       const std::set<int64_t>& future = {}) const;
  std::vector<int64_t> apply_retention(Study& study, const std::set<int64_t>& future = {}) const;

 private:
  std::string root_;
  CheckpointPolicy policy_;
};

}  // namespace kestrel::engine
