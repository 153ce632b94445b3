// SqliteStore: the embedded default Store, one SQLite file shared safely by many threads and processes.
// Durability: WAL + synchronous=NORMAL survives a process crash at any instant; a power loss may lose the last commits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/store.hpp"

struct sqlite3;  // SQLite's connection handle (sqlite3.h stays out of this header)

namespace kestrel::store {

namespace detail {
class Connection;  // one sqlite3 handle with its cached prepared statements (sqlite_store.cpp)
}

// Schema version written by this build. Older files are migrated on open (in one transaction); newer are refused.
inline constexpr int kSqliteSchemaVersion = 1;

struct SqliteStoreOptions {
  // Longest wait for a database that another connection or program keeps locked, per call. Past it the call throws
  // StoreError ("database ... stayed locked for N s") and nothing was written.
  double busy_timeout_s = 60.0;
  // Connections kept per store (reads run in parallel on them; writes of one process queue on a mutex first, so
  // they never fight for the SQLite lock among themselves). An in-memory database always uses exactly one.
  int max_connections = 4;
  // WAL size (pages of 4 KiB) past which the WAL is checkpointed into the database file.
  int checkpoint_pages = 1000;
  // true: a background thread checkpoints, so the syncs stay off the callers' path; a committing call checkpoints
  // itself only when the WAL reaches 4 x checkpoint_pages (the thread is starved or writes never pause).
  // false: SQLite's own auto-checkpoint, inside the committing call every checkpoint_pages.
  bool background_checkpoint = true;
  // The store clock (unix seconds); empty = the system clock. Tests inject a manual clock to make heartbeats and
  // fail_stale deterministic.
  std::function<double()> clock;
};

// What this represents: a Store over one SQLite database file (or ":memory:", private to this object).
//
// Layout (schema version 1): schema_version; studies (with a per-study trial counter and change counter);
// study_objectives; study_attrs; trials (study_id, number unique per study, state, worker, heartbeat, times,
// fail_reason, change_seq); trial_params (trial, name) unique; trial_values; trial_reports (trial, step, metric)
// unique; trial_attrs. Every trial write bumps its study's change counter inside the same transaction and stamps the
// trial row with it, which is what trials_changed_since reads (index on (study_id, change_seq)).
//
// Durability: journal_mode=WAL, synchronous=NORMAL. A process killed at any instant (SIGKILL included) loses no
// committed transaction and never corrupts the file. A power loss or OS crash may roll back the last transactions
// committed before it, but the file stays consistent (SQLite's WAL guarantee); use a PostgreSQL store or a file
// system with synchronous semantics when that matters.
//
// Concurrency: every method is thread-safe. Several processes may open the same file: each write is one
// BEGIN IMMEDIATE transaction; SQLITE_BUSY/LOCKED is waited for (busy_timeout) and retried with backoff up to
// options.busy_timeout_s, so "database is locked" never surfaces while another writer makes progress.
// fork(): a store object must not be used in a child (its calls there throw StoreError). A process that forks
// workers opens the store in each child after fork() and holds none open in the parent across the fork, or the
// child exec()s: SQLite's per-process lock bookkeeping would otherwise be inherited in a state the child does not hold.
//
// Refusals on open (StoreError, and the file's bytes are left untouched): a file that is not a SQLite database; a
// SQLite database that has tables but no Kestrel schema_version (someone else's database); a read-only file or
// folder; a schema version newer than kSqliteSchemaVersion; a failed migration (rolled back).
class SqliteStore final : public Store {
 public:
  // Opens or creates `path` (":memory:" for a private in-memory database). Throws StoreError as described above.
  explicit SqliteStore(const std::string& path, SqliteStoreOptions options = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  StudyInfo create_study(const std::string& name, const std::vector<Objective>& objectives,
                         const std::string& space_json) override;
  std::optional<StudyInfo> find_study(const std::string& name) override;
  std::vector<StudyInfo> list_studies() override;
  void set_study_attr(int64_t study_id, const std::string& key, const std::string& value) override;

  Trial create_trial(int64_t study_id, const Config& config, TrialState state, const std::string& worker,
                     const std::map<std::string, std::string>& attrs = {}) override;
  std::optional<Trial> claim_waiting(int64_t study_id, const std::string& worker) override;

  void report(int64_t trial_id, int64_t step, const std::map<std::string, double>& metrics) override;
  void heartbeat(int64_t trial_id) override;
  void set_trial_attr(int64_t trial_id, const std::string& key, const std::string& value) override;
  void finish(int64_t trial_id, TrialState state, const std::vector<double>& values,
              const std::string& reason = "") override;

  Trial trial(int64_t trial_id) override;
  std::vector<Trial> trials(int64_t study_id) override;
  std::vector<Trial> trials_changed_since(int64_t study_id, int64_t& cursor) override;
  std::vector<Trial> fail_stale(int64_t study_id, double stale_seconds) override;
  double now() override;

  // `PRAGMA integrity_check` result: "ok" for a sound file, else SQLite's list of problems.
  std::string integrity_check();
  // The schema version stored in the file (kSqliteSchemaVersion after a successful open).
  int schema_version();
  const std::string& path() const { return path_; }

 private:
  class Lease;  // a connection borrowed from the pool, returned on destruction
  Lease acquire();
  void release(std::unique_ptr<detail::Connection> c);
  std::unique_ptr<detail::Connection> open_connection();
  void open_and_check_schema();

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (rolled back on any exception), retried on BUSY/LOCKED until
  // the busy deadline. Holds write_mutex_ so the writers of this process queue here instead of on the file lock.
  template <class F>
  auto write_txn(F&& body);
  // Runs `body` inside a deferred read transaction (one consistent snapshot), retried on BUSY like writes.
  template <class F>
  auto read_txn(F&& body);

  std::string path_;
  SqliteStoreOptions options_;
  bool memory_ = false;
  int pid_ = 0;  // owner process; calls from a fork() child are refused

  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<detail::Connection>> idle_;
  int open_count_ = 0;
  std::mutex write_mutex_;

  // Background WAL checkpoints (file stores only): commits signal through SQLite's wal_hook, one thread checkpoints.
  static int on_wal_commit(void* self, ::sqlite3* db, const char* name, int pages);
  void checkpoint_loop();
  std::mutex ckpt_mutex_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
  std::atomic<int> ckpt_log_seen_{0};  // WAL frames at the last background checkpoint
  std::unique_ptr<std::thread> checkpointer_;  // a pointer, so that a fork() child can drop it without joining
};

// The file a storage URL names, by open_store's rules (sqlite:///abs, sqlite:////abs, sqlite://rel,
// sqlite://:memory:, or a bare path ending in .db, .sqlite or .sqlite3); std::nullopt for a URL of another scheme.
// Throws StoreError for a sqlite URL without a file and for a bare path with another suffix.
std::optional<std::string> sqlite_path_of(const std::string& url);

// open_store for SQLite URLs with options (busy timeout, clock, ...); throws StoreError for any other scheme.
std::unique_ptr<SqliteStore> open_sqlite_store(const std::string& url, SqliteStoreOptions options = {});

}  // namespace kestrel::store
