// SweepSpec: a sweep file (YAML) parsed and checked: study, storage, seed, space, objectives, tuner, pruner,
// evaluator, budget and worker settings. parse_sweep() reports every problem with file:line before anything runs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/command_evaluator.hpp"
#include "engine/constraints.hpp"
#include "engine/evaluator.hpp"
#include "engine/functions.hpp"
#include "engine/trainer_evaluator.hpp"
#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "engine/warm_start.hpp"

namespace kestrel::engine {

// evaluator.kind == "function": a built-in benchmark function (engine/functions.hpp) of parameters x0, x1, ...
struct FunctionSpec {
  std::string name;                       // branin, hartmann6, rosenbrock
  int dim = 0;                            // rosenbrock only; 0 = the function's default
  FunctionEvaluatorOptions options;       // steps (learning curve for pruners), curve_scale, metric
};

// evaluator.kind == "trainer": the built-in trainer on a training file (docs/model-file.md).
struct TrainerSpec {
  std::string train_file;                 // resolved against the sweep dir
  nlohmann::json settings = nlohmann::json::object();  // dotted-path overrides applied before the parameters
};

struct EvaluatorSpec {
  std::string kind = "function";          // command | function | trainer
  CommandSpec command;                    // engine/command_evaluator.hpp; argv[0] made absolute when relative
  FunctionSpec function;
  TrainerSpec trainer;
};

struct BudgetSpec {
  int64_t n_trials = 0;                   // COMPLETE + PRUNED trials the study should hold; 0 = no limit
  double timeout_s = 0.0;                 // wall time of one run; 0 = none
  std::optional<double> target;           // stop when the first objective's best reaches it
  int64_t max_failed = 0;                 // stop a run after this many FAILED trials; 0 = no limit
};

// What this represents: one validated sweep file. Every field holds its documented default when the file omits it.
// Thread safety: a plain value; immutable use is safe from many threads.
struct SweepSpec {
  std::string file;                       // path as given ("<text>" for parse_sweep on a string)
  std::string dir;                        // absolute folder of the file; relative paths in the sweep resolve here
  std::string text;                       // the file's bytes (stored with the study so resume needs no file)

  std::string study;                      // default: the file name without extension
  std::string storage;                    // empty: the caller's default
  uint64_t seed = 0;
  SearchSpace space;
  std::vector<Objective> objectives{Objective{}};
  std::string tuner = "random";
  nlohmann::json tuner_params = nlohmann::json::object();
  std::string pruner = "none";
  nlohmann::json pruner_params = nlohmann::json::object();
  EvaluatorSpec evaluator;
  BudgetSpec budget;
  int n_jobs = 1;
  int retry_failed = 0;
  double heartbeat_s = 5.0;
  double stale_after_s = 0.0;             // 0: 4 x heartbeat
  std::string runs_dir = "kestrel_runs";  // per-trial folders (relative to the working directory)
  CheckpointPolicy checkpoints;           // `checkpoints: {keep_best: k}`: retention of the trials' checkpoints
  // The `nas:` section (docs/nas.md): its architecture parameters are already part of `space`; nas_* tuners get
  // `space` in their params. Null when the file has no such section.
  nlohmann::json nas_space;
  nlohmann::json nas_compile;
  // `constraints:` (docs/sweep-file.md): conditions on final metrics, stored per trial; `best` is the best feasible.
  std::vector<Constraint> constraints;
  // `warm_start:`: finished trials of another study copied in as priors when the study is first run.
  std::optional<WarmStartSpec> warm_start;
  std::map<std::string, int> lines;       // dotted key ("evaluator.command") -> 1-based line, for later messages

  StudyOptions study_options() const;     // also stores the sweep text and dir as study attributes
  RunOptions run_options() const;
};

// Study attributes written by SweepSpec::study_options() (read back by `kestrel resume`).
inline constexpr const char* kSweepTextAttr = "sweep.text";
inline constexpr const char* kSweepFileAttr = "sweep.file";
inline constexpr const char* kSweepDirAttr = "sweep.dir";

// Parses sweep text. `file` names it in messages; `dir` is where relative paths resolve (default: cwd).
// Throws ConfigError listing every problem found, one per line, each "file:line[:column]: message"
// (malformed YAML, unknown keys with a did-you-mean, wrong types, impossible ranges, unknown tuner or pruner
// options). It does not touch the file system (see check_evaluator).
SweepSpec parse_sweep(const std::string& text, const std::string& file = "<sweep>", const std::string& dir = "");
// Reads and parses a file; ConfigError when it cannot be read.
SweepSpec load_sweep(const std::string& path);

// Checks what the evaluator needs from the machine: the command exists and is executable (searched on PATH when
// it has no '/'), the function is known, the trainer's model file exists. Throws ConfigError with file:line.
// resolve_references = false leaves references to other studies (trainer init_from {study, trial}) unchecked, for
// `kestrel validate` of a sweep whose source study has not run yet.
void check_evaluator(const SweepSpec& spec, bool resolve_references = true);

// Builds the evaluator the sweep describes. Requires check_evaluator() to have passed.
std::unique_ptr<Evaluator> make_evaluator(const SweepSpec& spec);

// Edit distance (insertions, deletions, substitutions, adjacent transpositions), for did-you-mean suggestions.
size_t edit_distance(const std::string& a, const std::string& b);
// The closest candidate to `word` when it is close enough to be a likely typo, else "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace kestrel::engine
