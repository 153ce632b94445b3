// Study: the embedded ask/tell API over a tuner, a pruner and a store; TrialHandle: one trial being evaluated.
// optimize-style loops (engine/runner.hpp) are built on this and nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <condition_variable>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/constraints.hpp"
#include "search/space.hpp"
#include "search/trial.hpp"
#include "store/store.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::engine {

using search::Config;
using search::Objective;
using search::SearchSpace;
using search::Trial;
using search::TrialState;

struct StudyOptions {
  std::string name = "default";
  SearchSpace space;
  std::vector<Objective> objectives{Objective{}};
  std::string tuner = "random";
  nlohmann::json tuner_params = nlohmann::json::object();
  std::string pruner = "none";
  nlohmann::json pruner_params = nlohmann::json::object();
  uint64_t seed = 0;
  std::string worker;               // default: "<hostname>:<pid>"
  double heartbeat_interval = 5.0;  // seconds between heartbeats of running trials (0 disables the thread)
  double stale_after = 0.0;         // a RUNNING trial silent this long is lost; 0 = 4 x heartbeat_interval
  int retry_failed = 0;             // lost trials are re-run as new trials (same config) up to this many times
  std::map<std::string, std::string> study_attrs;  // stored on creation (e.g. the sweep file text)
  // Evaluated by tell() from the trial's metrics (engine/constraints.hpp) and stored as search::kAttrConstraints;
  // a constrained metric the trial lacks fails it. best_trial() and pareto_front() keep feasible trials only.
  std::vector<Constraint> constraints;
};

class Study;

// What this represents: the right and duty to finish one RUNNING trial. Move-only; told exactly once (a second
// tell throws kestrel::Error). A handle destroyed untold fails its trial with reason "abandoned".
// Thread safety: one handle is used by one thread at a time; different handles may be used concurrently.
// Requires: the Study outlives its handles.
class TrialHandle {
 public:
  TrialHandle() = default;
  TrialHandle(TrialHandle&& o) noexcept;
  TrialHandle& operator=(TrialHandle&& o) noexcept;
  TrialHandle(const TrialHandle&) = delete;
  TrialHandle& operator=(const TrialHandle&) = delete;
  ~TrialHandle();

  bool valid() const { return study_ != nullptr; }
  int64_t id() const { return trial_.id; }
  int64_t number() const { return trial_.number; }
  const Config& config() const { return trial_.config; }
  const Trial& record() const { return trial_; }
  std::optional<double> budget() const;  // from the tuner's proposal (multi-fidelity), if any

  // Typed parameter access; throws ConfigError when absent or of another type.
  double get_double(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  std::string get_string(const std::string& name) const;

  // Stores intermediate values at `step` (before any pruning decision is made on them).
  void report(int64_t step, const std::map<std::string, double>& metrics);
  void report(int64_t step, double value);  // the first objective's metric
  // Asks the pruner about the latest reported step. Always false when the study has no pruner.
  bool should_prune();

  // Final values, one per objective. A NaN or infinite value fails the trial (reason says which objective).
  // With constraints, their violations are stored first (attr); a constrained metric the trial lacks fails it.
  void tell(const std::vector<double>& values);
  void tell(double value) { tell(std::vector<double>{value}); }
  void tell_failed(const std::string& reason);
  void tell_pruned(const std::string& reason = "pruned");
  bool told() const { return told_; }
  void set_attr(const std::string& key, const std::string& value);

 private:
  friend class Study;
  TrialHandle(Study* s, Trial t) : study_(s), trial_(std::move(t)) {}
  void finish(TrialState state, const std::vector<double>& values, const std::string& reason);
  Study* study_ = nullptr;
  Trial trial_;
  int64_t last_step_ = -1;
  bool told_ = false;
};

// What this represents: one named study in a store, opened for asking and telling. Creating a Study with the name
// of an existing study loads it; its stored space must equal `options.space` (else ConfigError), so a resumed sweep
// continues the same study. Tuner and pruner state are rebuilt from the stored trials.
// Thread safety: ask(), trials(), best_trial() and the handles' methods may be called from many threads.
class Study {
 public:
  Study(std::shared_ptr<store::Store> store, StudyOptions options);
  ~Study();
  Study(const Study&) = delete;
  Study& operator=(const Study&) = delete;

  // Next trial: a WAITING (enqueued or retried) one if any, else the tuner's proposal, stored RUNNING before return.
  // Throws tuners::SpaceExhausted when a finite space is used up.
  TrialHandle ask();
  // Adds a fixed configuration to the queue (validated against the space); returns its trial number.
  int64_t enqueue(const Config& config, const std::map<std::string, std::string>& attrs = {});

  // Fails RUNNING trials whose heartbeat is stale (reason "lost ...") and enqueues retries when retry_failed allows.
  // Called on open and before each ask by the runner; safe to call from any worker.
  std::vector<Trial> reclaim_stale();

  std::vector<Trial> trials();                  // every trial, by number, fresh from the store
  // Results of this study: COMPLETE, feasible (engine/constraints.hpp) and not warm-start priors copied from
  // another study (those are observations for the tuner, measured elsewhere).
  std::optional<Trial> best_trial();            // single objective: best such trial
  std::vector<Trial> pareto_front();            // non-dominated such trials (any number of objectives)

  int64_t id() const { return info_.id; }
  const StudyOptions& options() const { return options_; }
  const store::StudyInfo& info() const { return info_; }
  store::Store& store() { return *store_; }
  bool created() const { return created_; }     // true when this call created the study

 private:
  friend class TrialHandle;
  void refresh_locked();                       // pulls changed trials into the cache
  void upsert_locked(Trial t);                 // inserts or replaces one trial, keeping ordered_ in step
  tuners::History history_locked() const;
  bool should_prune(const Trial& t, int64_t step);
  void track(int64_t trial_id, bool live);
  void heartbeat_loop();

  std::shared_ptr<store::Store> store_;
  StudyOptions options_;
  store::StudyInfo info_;
  bool created_ = false;
  std::unique_ptr<tuners::Tuner> tuner_;
  std::unique_ptr<tuners::Pruner> pruner_;

  std::mutex mu_;                              // guards the cache, tuner and pruner
  std::map<int64_t, Trial> cache_;             // by trial number
  std::vector<const Trial*> ordered_;          // cache_ values in number order (History::trials)
  int64_t cursor_ = 0;

  std::mutex live_mu_;
  std::set<int64_t> live_;                     // trial ids with a heartbeat
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread heartbeat_thread_;
};

// The search space as stored with a study (and read back by `kestrel status` and resume).
nlohmann::json space_to_json(const SearchSpace& space);
SearchSpace space_from_json(const nlohmann::json& j);

// Default worker id "<hostname>:<pid>".
std::string default_worker_id();

}  // namespace kestrel::engine
