// CommandEvaluator: runs each trial as an external command (argv with {param} placeholders, parameters also in
// environment variables and <trial_dir>/params.json) and reads its metrics from stdout lines as they arrive.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "engine/evaluator.hpp"

namespace kestrel::engine {

// How metric lines on stdout look.
enum class MetricFormat {
  KeyValue,   // Katib's default: "name=value" pairs, several per line ("step=3 loss=0.25 acc=0.91")
  Regex,      // a user regex applied repeatedly to each line: group 1 = metric name, group 2 = value
  JsonLines,  // one JSON object per line: {"step": 3, "loss": 0.25}
};
MetricFormat metric_format_from_string(const std::string& s);  // "key_value"/"katib", "regex", "json"; ConfigError
std::string to_string(MetricFormat f);

struct CommandSpec {
  // The command and its arguments. Placeholders: {<param name>} (the value as text; empty when the parameter is
  // inactive), {trial} (trial number), {trial_dir}, {budget} (empty when the tuner gave none), {checkpoint_dir}
  // (where the trial writes its checkpoint) and {restore_from} (the checkpoint to start from; empty when the trial
  // starts from scratch), both empty when the runner owns no checkpoints. Other text in braces is left as it is.
  std::vector<std::string> argv;
  // Run through "/bin/sh -c" (the argv elements joined by spaces). Placeholder values are then single-quoted so
  // that a parameter value can never inject shell syntax.
  bool shell = false;
  std::string cwd;                         // working folder of the command; empty = this process's
  std::map<std::string, std::string> env;  // extra environment variables
  MetricFormat format = MetricFormat::KeyValue;
  std::string regex;                       // for MetricFormat::Regex
  std::string step_key = "step";           // the metric that carries the step number (never reported itself)
  // A line whose `final_key` metric is non-zero (JSON: true) gives the trial's final values: its metrics are not
  // reported as an intermediate step. Without such a line the last value of each objective metric is final.
  std::string final_key = "final";
  double timeout_s = 0.0;  // per trial; 0 = none. A trial past it FAILS with "timeout after N s".
  double grace_s = 5.0;    // between SIGTERM and SIGKILL when a trial is stopped (pruned, timeout, sweep stop)
  size_t stderr_tail = 2000;  // bytes of stderr quoted in a failure reason (all of it goes to stderr.log)
};

// What this represents: the evaluator for commands. For each trial it writes <trial_dir>/params.json (the
// parameters; with the checkpoint lifecycle on, also "_kestrel": {"checkpoint_dir", "restore_from" (null when
// starting from scratch), "budget"}), exports the context's env (KESTREL_CHECKPOINT_DIR, KESTREL_RESTORE_FROM), starts the
// command (own process group, stdin /dev/null, stdout to <trial_dir>/stdout.log, stderr to stderr.log), parses
// stdout line by line as it arrives, reports each metric line (stored) and then asks should_prune(). Pruned,
// timed out or stopped commands get SIGTERM and, after grace_s, SIGKILL, to the whole process group.
//
// Outcome of one trial: COMPLETE with the last value of each objective metric; PRUNED when the pruner said so;
// FAILED with one reason: command not found or not executable, exit code N, killed by signal S, timeout, stopped,
// no objective metric printed (with the counts of lines and of lines not understood), NaN or infinite value.
//
// Thread safety: evaluate() and validate() may run concurrently (the object is immutable after construction).
class CommandEvaluator : public Evaluator {
 public:
  // `space` tells inactive conditional parameters (their placeholders become empty) from unknown names.
  // Throws ConfigError for an empty argv, an invalid regex or one with fewer than 2 groups.
  CommandEvaluator(CommandSpec spec, std::vector<search::Objective> objectives, SearchSpace space = {});

  // Checks before a sweep starts that the command exists and is executable and that every placeholder names a
  // parameter of `space` (or a built-in one). Throws ConfigError with the reason.
  void validate(const SearchSpace& space) const;

  void evaluate(TrialHandle& trial, const EvalContext& ctx) override;
  std::string name() const override { return "command"; }
  const CommandSpec& spec() const { return spec_; }

  // The argv that would be run for this configuration (placeholders substituted; shell wrapping applied).
  std::vector<std::string> expand_argv(const Config& config, int64_t trial_number, const std::string& trial_dir,
                                       const std::optional<double>& budget, const std::string& checkpoint_dir = "",
                                       const std::string& restore_from = "") const;
  // Environment variable name for a parameter: KESTREL_PARAM_ + upper case, other characters as '_'.
  static std::string param_env_name(const std::string& param);

 private:
  CommandSpec spec_;
  std::vector<search::Objective> objectives_;
  SearchSpace space_;
  std::regex regex_;
};

}  // namespace kestrel::engine
