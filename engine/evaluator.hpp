// Evaluator: how one trial's configuration becomes values (a C++ callback, an external command, a built-in
// function or the built-in trainer). The runner calls it; it reports through the TrialHandle and tells it.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "engine/study.hpp"

namespace kestrel::engine {

struct EvalContext {
  // Folder reserved for this trial (parameters JSON, logs, checkpoints); created by the runner.
  std::string trial_dir;
  // Set by the runner when the sweep is stopping (signal, budget); long evaluations should end promptly
  // (commands get SIGTERM, then SIGKILL after the grace period).
  const std::atomic<bool>* stop = nullptr;
  bool stopping() const { return stop && stop->load(); }
  // The checkpoint lifecycle (engine/checkpoints.hpp), set by the runner when it owns checkpoints; empty otherwise.
  // checkpoint_dir: an empty folder the trial writes its checkpoint into (sealed by the runner after the trial).
  // restore_from: the verified checkpoint folder of the trial this one continues (an ASHA/Hyperband promotion, the
  // member's previous PBT segment) or copies (a PBT exploit, attr pbt.donor); nullopt = start from scratch.
  // env: the same as KESTREL_CHECKPOINT_DIR / KESTREL_RESTORE_FROM, for evaluators that start processes.
  std::string checkpoint_dir;
  std::optional<std::string> restore_from;
  std::map<std::string, std::string> env;
};

// What this represents: one way of evaluating trials. evaluate() runs the trial to its end and tells the handle
// exactly once (COMPLETE, PRUNED or FAILED with a reason). If it throws instead, the runner fails the trial with the
// exception's message; either way the sweep goes on.
// Thread safety: evaluate() is called concurrently from up to n_jobs runner threads, each with its own handle.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual void evaluate(TrialHandle& trial, const EvalContext& ctx) = 0;
  virtual std::string name() const = 0;
};

// (a) A C++ callback. It returns the objective values; it may call trial.report()/should_prune() and throw
// TrialPruned to stop early; any other exception fails the trial with its message.
class CallbackEvaluator : public Evaluator {
 public:
  using Fn = std::function<std::vector<double>(TrialHandle&)>;
  explicit CallbackEvaluator(Fn fn) : fn_(std::move(fn)) {}
  void evaluate(TrialHandle& trial, const EvalContext& ctx) override;
  std::string name() const override { return "callback"; }

 private:
  Fn fn_;
};

}  // namespace kestrel::engine
