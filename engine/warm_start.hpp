// Warm-starting a study from another study (the sweep's `warm_start:` key) and finding another study's trial for
// transfer learning (`init_from: {study, trial}`): both read finished trials of a study in any store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/space.hpp"
#include "search/trial.hpp"
#include "store/store.hpp"

namespace kestrel::engine {

class Study;

// Study attribute written once the warm start of a study is done (the report as JSON). Its presence makes a
// resumed sweep skip the copy.
inline constexpr const char* kStudyAttrWarmStart = "warm_start";
// Worker name of the trials a warm start inserts.
inline constexpr const char* kWarmStartWorker = "warm_start";

// The sweep's `warm_start:` section (docs/sweep-file.md).
struct WarmStartSpec {
  std::string storage;    // the source store's URL; empty: the new study's own store
  std::string study;      // the source study's name
  int64_t max_trials = 0; // 0 = every mappable COMPLETE trial; else the best max_trials of them (first objective)
  // Values for parameters that are new in this space (what the source study used without tuning them). A source
  // trial that lacks an active parameter of the new space, with no value here, is skipped.
  std::map<std::string, search::Value> fill;

  static WarmStartSpec from_json(const nlohmann::json& j);  // throws ConfigError naming the bad key
  nlohmann::json to_json() const;
};

// Mapping rule of one source configuration onto a new space, parameter by parameter in the new space's order:
//  - same name, compatible type: kept. Float takes ints and floats; Int takes integral numbers; Categorical takes a
//    value equal to one of its choices; Fixed takes only its own value.
//  - a number outside the new range, off the new step grid, or a category not among the new choices: the trial is
//    unmappable (skipped). It is not clipped: the observed value belongs to the point the source measured, and a
//    model told it belongs to a boundary point would learn a wrong surface.
//  - a parameter the new space adds: its Fixed value, else `fill`, else the trial is unmappable.
//  - parameters the new space removed, or that are inactive under its conditions: dropped (listed in `dropped`).
struct MappedConfig {
  std::optional<search::Config> config;   // nullopt: unmappable
  std::string reason;                     // why unmappable
  std::vector<std::string> dropped;       // source parameters left out
  std::vector<std::string> filled;        // new parameters set from Fixed or `fill`
};
MappedConfig map_config(const search::Config& source, const search::SearchSpace& target,
                        const std::map<std::string, search::Value>& fill = {});

// What one warm start did. Serialized as the study attr kStudyAttrWarmStart.
struct WarmStartReport {
  struct Entry {
    int64_t source_number = -1;
    int64_t new_number = -1;    // in the new study, when mapped
    std::string reason;         // why skipped
  };
  std::string source_study, source_storage;
  int64_t source_complete = 0;              // COMPLETE trials in the source study
  std::vector<Entry> mapped, skipped;
  std::vector<std::string> dropped_params;  // union over the mapped trials
  std::vector<std::string> filled_params;
  bool already_done = false;                // this study was warm-started before: nothing copied now

  nlohmann::json to_json() const;
  static WarmStartReport from_json(const nlohmann::json& j);
  std::string summary() const;              // a few lines for people
};

// Copies the mappable COMPLETE trials of the source study into `study` as finished COMPLETE trials (worker
// kWarmStartWorker, attr search::kAttrWarmStart = {"study", "number", "storage"}, the source's kAttrMetrics, and
// kAttrConstraints evaluated with the study's constraints). Objective values are taken by objective name from the
// source trial (an objective of the source, its final metrics, or its last report of that metric); a trial lacking
// one is skipped, as is one lacking a constrained metric.
//
// Done once per study: when the study attr kStudyAttrWarmStart exists, nothing is copied (already_done). A copy
// that was interrupted leaves no attr; the next call copies only the source trials not copied yet, so priors are
// never duplicated. Two processes warm-starting the same new study at the same instant could both copy: call it
// from the process that runs the sweep (`kestrel run` / `resume`), not from every worker.
//
// `source`: the source store; null opens spec.storage (or uses the study's store when spec.storage is empty).
// Throws ConfigError when the source store (an SQLite file must exist; none is created) or study does not exist, or
// the source is the study itself.
WarmStartReport warm_start(Study& study, const WarmStartSpec& spec, store::Store* source = nullptr);

// ---------------------------------------------------------------------------------------------------------------
// Trials of another study as a starting point for training (transfer learning).

// Trial attribute: absolute path of the trial's final weights (safetensors), written by the trainer evaluator.
inline constexpr const char* kAttrWeights = "weights";

// `init_from: {storage, study, trial}` in a training file or a sweep's trainer settings.
struct TrialRef {
  std::string storage;         // empty: the default store given to resolve_trial_weights
  std::string study;
  std::string trial = "best";  // "best" (best feasible COMPLETE trial of a single-objective study) or a number

  static TrialRef from_json(const nlohmann::json& j);  // throws ConfigError
  nlohmann::json to_json() const;
};

struct ResolvedTrial {
  std::string storage;
  std::string study;
  int64_t number = -1;
  std::string weights;  // absolute path, exists
  nlohmann::json to_json() const;
};

// Finds the trial and its saved weights. Throws ConfigError with what is missing: the store, the study, the trial
// (or any COMPLETE feasible one for "best"), the weights attr (the study was not run by the trainer evaluator), or
// the file itself (deleted).
ResolvedTrial resolve_trial_weights(const TrialRef& ref, const std::string& default_storage);

}  // namespace kestrel::engine
