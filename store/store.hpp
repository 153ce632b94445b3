// Store: the one interface to persisted studies and trials (the single source of truth of a sweep).
// Implementations: SqliteStore (embedded default, store/sqlite_store.hpp); every one passes tests/store's conformance suite.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "search/space.hpp"
#include "search/trial.hpp"

namespace kestrel::store {

using search::Config;
using search::Objective;
using search::Report;
using search::Trial;
using search::TrialState;

struct StudyInfo {
  int64_t id = -1;
  std::string name;
  std::vector<Objective> objectives;
  std::string space_json;   // the search space as written by the engine (opaque to the store)
  std::map<std::string, std::string> attrs;
};

// What this represents: persistent studies, each with numbered trials, parameters, final values, intermediate
// reports, attributes, and per-running-trial worker id and heartbeat.
//
// Thread safety: every method may be called concurrently from many threads and many processes sharing the same
// database; each write is one transaction (all or nothing). A busy database is waited for and retried, never
// reported as an error unless the wait exceeds the store's timeout.
//
// Immutability: a finished trial (COMPLETE, PRUNED, FAILED) never changes again; any write to it (report, finish,
// heartbeat) throws TrialFinishedError, except attributes (set_trial_attr), which stay writable so that
// post-hoc analysis (reports, robustness checks) can annotate a trial.
//
// Trial numbers are per study, start at 0, are assigned inside the creating transaction and are never reused.
//
// Errors: StoreError with an actionable message (file, cause). Nothing is overwritten on error.
class Store {
 public:
  virtual ~Store() = default;

  // Creates a study; throws StoreError if `name` exists.
  virtual StudyInfo create_study(const std::string& name, const std::vector<Objective>& objectives,
                                 const std::string& space_json) = 0;
  virtual std::optional<StudyInfo> find_study(const std::string& name) = 0;
  virtual std::vector<StudyInfo> list_studies() = 0;
  virtual void set_study_attr(int64_t study_id, const std::string& key, const std::string& value) = 0;

  // Creates a trial with the next number, in state RUNNING (heartbeat = now, worker set) or WAITING.
  virtual Trial create_trial(int64_t study_id, const Config& config, TrialState state, const std::string& worker,
                             const std::map<std::string, std::string>& attrs = {}) = 0;
  // Atomically claims the oldest WAITING trial of the study for `worker` (it becomes RUNNING); nullopt if none.
  virtual std::optional<Trial> claim_waiting(int64_t study_id, const std::string& worker) = 0;

  // Records intermediate values; an existing (trial, step, metric) is overwritten. Refused on finished trials.
  virtual void report(int64_t trial_id, int64_t step, const std::map<std::string, double>& metrics) = 0;
  virtual void heartbeat(int64_t trial_id) = 0;
  virtual void set_trial_attr(int64_t trial_id, const std::string& key, const std::string& value) = 0;
  // Moves a RUNNING or WAITING trial to a finished state. values: one per objective for COMPLETE.
  virtual void finish(int64_t trial_id, TrialState state, const std::vector<double>& values,
                      const std::string& reason = "") = 0;

  virtual Trial trial(int64_t trial_id) = 0;
  virtual std::vector<Trial> trials(int64_t study_id) = 0;  // ordered by number
  // Incremental view: trials whose record changed after `cursor`; updates `cursor`. Starting at cursor 0 returns
  // every trial. Lets a Study keep a cache in step with other processes at O(changes) cost.
  virtual std::vector<Trial> trials_changed_since(int64_t study_id, int64_t& cursor) = 0;

  // Fails RUNNING trials of the study whose heartbeat is older than `stale_seconds` (by the store's clock) with
  // reason "lost: no heartbeat for N s (worker W)". Returns the trials it failed (their final records).
  virtual std::vector<Trial> fail_stale(int64_t study_id, double stale_seconds) = 0;

  // Current time by the store's clock, in unix seconds.
  virtual double now() = 0;
};

// Opens a store from a URL: "sqlite:///abs/path.db", "sqlite://relative.db", or a bare path ending in .db
// (also .sqlite, .sqlite3); "sqlite:////abs/path.db" (SQLAlchemy's absolute form) names the same file as
// "sqlite:///abs/path.db"; "sqlite://:memory:" is a private in-memory store (one process, gone when destroyed).
// Throws StoreError for unknown schemes (postgresql:// included, until a build has it) or unusable databases.
std::unique_ptr<Store> open_store(const std::string& url);

}  // namespace kestrel::store
