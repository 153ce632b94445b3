// TrainerEvaluator: the built-in trainer as an evaluator. Each trial's parameters are written into the training
// file (YAML) before it is read as a TrainSpec; validation metrics are reported every epoch and a pruned trial stops.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "engine/evaluator.hpp"
#include "trainer/train.hpp"

namespace kestrel::engine {

// Where a trial's parameters go, in this order:
//  1. "${name}" anywhere in the training file's text is replaced by the value (any key, e.g. a layer's width:
//     `- {op: linear, out: ${hidden}}`). Strings are written as quoted YAML scalars.
//  2. a dotted name is a path in the file: "optimizer.weight_decay", "training.batch_size",
//     "model.nodes.1.out" (numbers index lists);
//  3. shorthands: lr, optimizer (its kind), momentum, weight_decay -> optimizer.*; batch_size, epochs, seed ->
//     training.*; label_smoothing -> loss.*; schedule -> schedule.kind.
// A tuner budget (multi-fidelity) sets training.epochs.
//
// Objectives name metrics: val_loss, val_accuracy, train_loss, train_accuracy (of the best epoch when early
// stopping restores it, else of the last), test_loss, test_accuracy, param_count, flops_per_sample, wall_seconds.
// With a `robustness:` section in the training file (docs/robustness.md) also: clean_accuracy, robustness_flags
// (failed sanity checks), robust_accuracy_<attack>_<eps> (one attack, e.g. robust_accuracy_pgd_0.1) and
// robust_accuracy@<eps> (the lowest accuracy of all attacks at that epsilon: the robust accuracy the evaluation can
// vouch for). The robustness report (per-epsilon, per-class accuracy, confusion matrices, sanity flags) is stored
// as the trial attr "robustness", its failed checks also as "robustness_flags"; the transfer report (init_from
// matching, freezing) as "transfer" and pseudo-labeling rounds as "pseudo_label".
struct TrainerEvaluatorOptions {
  std::string train_file;                                // the training file (docs/model-file.md)
  nlohmann::json settings = nlohmann::json::object();    // overrides applied before the parameters, same paths
  // Architecture search (the sweep's `nas:` section, docs/nas.md): when nas_space is set, the architecture
  // parameters of the trial are compiled into the model (nas::compile_arch with nas_compile) instead of the
  // training file's model section; input shape and class count default to the training file's.
  nlohmann::json nas_space;                              // null: no architecture search
  nlohmann::json nas_compile = nlohmann::json::object();
  // Store of `init_from: {study, trial}` references that name no storage (the sweep's storage); empty: the
  // default store of the working directory (sqlite://<cwd>/kestrel.db, as `kestrel` uses).
  std::string storage;
  // Metrics the sweep's constraints read (engine/constraints.hpp): checked by validate() like objectives.
  std::vector<std::string> constraint_metrics;
  // false: a study reference in init_from is left unresolved (and init_from unset) so that `kestrel validate` can
  // check a fine-tuning sweep before the study it starts from has run.
  bool resolve_study_refs = true;
};

// Replaces training.init_from given as {storage, study, trial} in a training file's YAML by that trial's weights
// file (engine/warm_start.hpp resolve_trial_weights; storage defaults to default_storage, else the working
// directory's kestrel.db). Returns the resolved trial as JSON, null when init_from is absent or already a file.
// Throws ConfigError when the study, trial or weights cannot be found. Used by `kestrel train` and the evaluator.
nlohmann::json resolve_init_from_study(YAML::Node root, const std::string& default_storage = "");

// What this represents: the trainer evaluator of a sweep. Each epoch's validation metrics are reported (step =
// epoch, 1-based) and should_prune() is asked; a pruned trial stops after that epoch and is told PRUNED. The data
// set is loaded once per distinct data section and seed and shared by every trial.
// Failures (a non-finite loss, a bad parameter value, unreadable data) fail the trial with the trainer's message.
// When the training file sets training.checkpoint_dir, each trial checkpoints into <trial_dir>/checkpoints instead.
// Each trial's final weights go to <trial_dir>/model.safetensors (training.save_weights is not used in a sweep), and
// the absolute path is stored as the trial attr "weights" (engine/warm_start.hpp kAttrWeights), so a later study can
// start from it: training.init_from may be {storage, study, trial: best | N} instead of a file (resolved with
// resolve_trial_weights; the resolved trial is stored as the attr "init_from"). Every final metric is stored as the
// attr "metrics" (engine/constraints.hpp kAttrMetrics), for constraints and warm starts.
// Thread safety: evaluate() may run concurrently (the data cache is locked; each trial trains on its own model).
class TrainerEvaluator : public Evaluator {
 public:
  // Reads the training file. Throws ConfigError when it cannot be read or an objective is not a known metric.
  TrainerEvaluator(TrainerEvaluatorOptions options, std::vector<search::Objective> objectives, SearchSpace space);

  // Checks before a sweep that every parameter lands somewhere (rules above) and that the file, with a sample
  // configuration of `space` applied, is a valid TrainSpec. Throws ConfigError naming the parameter or key.
  void validate() const;

  void evaluate(TrialHandle& trial, const EvalContext& ctx) override;
  std::string name() const override { return "trainer"; }

  // The TrainSpec a configuration gives (parameters applied as above). Throws ConfigError.
  trainer::TrainSpec spec_for(const Config& config, std::optional<double> budget = std::nullopt,
                              const std::string& trial_dir = "") const;

  static std::vector<std::string> metric_names();
  // True for the metrics a robustness evaluation gives (names above); `epsilon` gets the epsilon of the
  // robust_accuracy forms.
  static bool is_robust_metric(const std::string& name, double* epsilon = nullptr);

 private:
  std::shared_ptr<const trainer::TrainData> data_for(const trainer::TrainSpec& spec);
  // spec_for, also returning what a study reference in training.init_from resolved to (null when none).
  trainer::TrainSpec build_spec(const Config& config, std::optional<double> budget, const std::string& trial_dir,
                                nlohmann::json* init_from) const;

  TrainerEvaluatorOptions options_;
  std::vector<search::Objective> objectives_;
  SearchSpace space_;
  std::string text_;  // the training file's text
  std::shared_ptr<const void> arch_space_;  // nas::ArchSpace when options_.nas_space is set (type-erased in the header)
  std::set<std::string> arch_params_;       // names of the architecture decisions

  std::mutex data_mu_;
  std::map<std::string, std::shared_ptr<const trainer::TrainData>> data_;  // by data section + seed
};

}  // namespace kestrel::engine
