// SqliteStore: studies and trials in one SQLite file (WAL), safe for many threads and processes at once.
// Holds the small sqlite3 RAII wrapper, the one SQLite check macro, the schema, its migrations and the bulk loaders.
#include "store/sqlite_store.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "common/error.hpp"

namespace kestrel::store {

namespace detail {

// Raised inside the wrapper when SQLite answers BUSY or LOCKED; the transaction helpers catch it, roll back, wait and
// retry. It never leaves this file: past the deadline it becomes a StoreError.
struct BusyError {
  int code = SQLITE_BUSY;
};

namespace {

// A message a user can act on for the codes that have a clear cause; SQLite's own text follows it.
std::string advice_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOTADB: return "the file is not a SQLite database (Kestrel refuses to touch it)";
    case SQLITE_READONLY: return "the database is read-only (Kestrel needs write access to the file and its folder)";
    case SQLITE_CANTOPEN: return "cannot open the database file (does the folder exist and is it writable?)";
    case SQLITE_FULL: return "the disk is full";
    case SQLITE_CORRUPT: return "the database file is corrupt (check it with: sqlite3 FILE 'PRAGMA integrity_check')";
    case SQLITE_IOERR: return "an I/O error occurred";
    case SQLITE_PERM: return "permission denied";
    default: return "";
  }
}

}  // namespace

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& path, const char* context, const char* file,
                               int line) {
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw BusyError{rc};
  std::string msg = "SQLite store " + path + ": " + context + " failed: ";
  std::string advice = advice_for(rc);
  if (!advice.empty()) msg += advice + "; ";
  msg += "SQLite says \"" + std::string(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + "\" (code " +
         std::to_string(rc) + ", " + std::filesystem::path(file).filename().string() + ":" + std::to_string(line) +
         ")";
  throw StoreError(msg);
}

// The one SQLite check: anything but OK/ROW/DONE throws (BusyError for BUSY/LOCKED, else StoreError).
#define KESTREL_SQLITE_CHECK(conn, expr, context)                                            \
  do {                                                                                       \
    int kestrel_rc_ = (expr);                                                                \
    if (kestrel_rc_ != SQLITE_OK && kestrel_rc_ != SQLITE_ROW && kestrel_rc_ != SQLITE_DONE) \
      ::kestrel::store::detail::throw_sqlite((conn).db(), kestrel_rc_, (conn).path(), context, __FILE__, __LINE__); \
  } while (0)

// One sqlite3 handle and its prepared statements (cached by SQL text: each statement is compiled once per
// connection). Not thread-safe: the store lends a connection to one thread at a time.
class Connection {
 public:
  Connection(const std::string& path, int flags, double busy_timeout_s) : path_(path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string err = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      std::string advice = advice_for(rc);
      throw StoreError("SQLite store " + path + ": cannot open" + (advice.empty() ? "" : ": " + advice) +
                       "; SQLite says \"" + err + "\"");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(std::clamp(busy_timeout_s, 0.0, 1e6) * 1000.0));
  }
  ~Connection() {
    for (auto& [sql, st] : cache_) sqlite3_finalize(st);
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }

  sqlite3_stmt* prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    KESTREL_SQLITE_CHECK(*this, sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr),
                         "preparing a statement");
    cache_.emplace(sql, st);
    return st;
  }

  // Runs one or more statements without results (DDL, BEGIN/COMMIT, PRAGMA).
  void exec(const char* sql, const char* context) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);
    KESTREL_SQLITE_CHECK(*this, rc, context);
  }

  // Leaves no transaction open; errors are ignored because the caller is already reporting one.
  void rollback_quietly() {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  // Ownership handed back without closing (used in a fork() child, where closing could checkpoint or delete the
  // parent's WAL while the parent still uses it).
  void abandon() {
    cache_.clear();
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One use of a cached statement: binds, steps, reads columns, and resets on destruction (a statement left
// unreset would keep its read snapshot open).
class Query {
 public:
  Query(Connection& c, const std::string& sql) : c_(c), st_(c.prepare(sql)) {}
  ~Query() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind_int(int i, int64_t v) {
    KESTREL_SQLITE_CHECK(c_, sqlite3_bind_int64(st_, i, v), "binding a value");
    return *this;
  }
  Query& bind_double(int i, double v) {
    KESTREL_SQLITE_CHECK(c_, sqlite3_bind_double(st_, i, v), "binding a value");
    return *this;
  }
  Query& bind_text(int i, const std::string& v) {
    KESTREL_SQLITE_CHECK(c_, sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT),
                         "binding a value");
    return *this;
  }
  Query& bind_null(int i) {
    KESTREL_SQLITE_CHECK(c_, sqlite3_bind_null(st_, i), "binding a value");
    return *this;
  }

  // true: a row is ready; false: done.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    KESTREL_SQLITE_CHECK(c_, rc, sqlite3_sql(st_));
    return false;
  }
  void run() {
    while (step()) {
    }
  }

  bool is_null(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }
  int64_t i64(int col) const { return sqlite3_column_int64(st_, col); }
  // NULL reads as NaN: SQLite stores a NaN REAL as NULL.
  double f64(int col) const {
    return is_null(col) ? std::numeric_limits<double>::quiet_NaN() : sqlite3_column_double(st_, col);
  }
  double f64_or_zero(int col) const { return is_null(col) ? 0.0 : sqlite3_column_double(st_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col))) : std::string();
  }

 private:
  Connection& c_;
  sqlite3_stmt* st_;
};

}  // namespace detail

using detail::BusyError;
using detail::Connection;
using detail::Query;

namespace {

// ---- schema ------------------------------------------------------------------------------------------------------

// Version 1. Parameter values keep their type in `kind` and their value in an untyped column, so doubles stay
// 8-byte IEEE values (exact round trip), integers stay 64-bit and strings stay text.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE studies (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  space_json TEXT NOT NULL,
  next_number INTEGER NOT NULL DEFAULT 0,
  change_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE study_objectives (
  study_id INTEGER NOT NULL REFERENCES studies(id),
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
  PRIMARY KEY (study_id, idx)
) WITHOUT ROWID;
CREATE TABLE study_attrs (
  study_id INTEGER NOT NULL REFERENCES studies(id),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (study_id, key)
) WITHOUT ROWID;
CREATE TABLE trials (
  id INTEGER PRIMARY KEY,
  study_id INTEGER NOT NULL REFERENCES studies(id),
  number INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('WAITING', 'RUNNING', 'COMPLETE', 'PRUNED', 'FAILED')),
  worker TEXT NOT NULL DEFAULT '',
  heartbeat REAL,
  start_time REAL,
  end_time REAL,
  fail_reason TEXT NOT NULL DEFAULT '',
  change_seq INTEGER NOT NULL DEFAULT 0,
  UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials (study_id, state, number);
CREATE INDEX trials_by_change ON trials (study_id, change_seq);
CREATE TABLE trial_params (
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  name TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('float', 'int', 'bool', 'string')),
  value,
  PRIMARY KEY (trial_id, name)
) WITHOUT ROWID;
CREATE TABLE trial_values (
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  idx INTEGER NOT NULL,
  value REAL,
  PRIMARY KEY (trial_id, idx)
) WITHOUT ROWID;
CREATE TABLE trial_reports (
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  step INTEGER NOT NULL,
  metric TEXT NOT NULL,
  value REAL,
  PRIMARY KEY (trial_id, step, metric)
) WITHOUT ROWID;
CREATE TABLE trial_attrs (
  trial_id INTEGER NOT NULL REFERENCES trials(id),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (trial_id, key)
) WITHOUT ROWID;
)sql";

// A step from schema version `from` to `from + 1`, run inside the opening transaction.
struct Migration {
  int from;
  const char* sql;
};

// Version 0 is the pre-release layout without change counters (tests/store/fixtures/schema_v0.sql). Existing trials
// get distinct stamps in number order, so a cursor of 0 still returns every trial.
constexpr Migration kMigrations[] = {
    {0, R"sql(
ALTER TABLE studies ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE trials SET change_seq = number + 1;
UPDATE studies SET change_seq = COALESCE((SELECT max(t.change_seq) FROM trials t WHERE t.study_id = studies.id), 0);
CREATE INDEX trials_by_change ON trials (study_id, change_seq);
UPDATE schema_version SET version = 1;
)sql"},
};

// ---- helpers -----------------------------------------------------------------------------------------------------

const char* kind_of(const search::Value& v) {
  switch (v.index()) {
    case 0: return "float";
    case 1: return "int";
    case 2: return "bool";
    default: return "string";
  }
}

double system_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Jittered exponential backoff (1 ms doubling to 50 ms): processes that collided do not collide again in step.
void backoff(int attempt) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())) ^
                                    static_cast<unsigned>(getpid()));
  double base_ms = std::min(50.0, std::ldexp(1.0, std::min(attempt, 6)));
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(base_ms * jitter(rng)));
}

// Which trials a bulk load reads; the WHERE clauses bind ?1 (and ?2).
enum class Select { ById, ByStudy, ByStudyChangedSince };

const char* where_of(Select s) {
  switch (s) {
    case Select::ById: return "t.id = ?1";
    case Select::ByStudy: return "t.study_id = ?1";
    case Select::ByStudyChangedSince: return "t.study_id = ?1 AND t.change_seq > ?2";
  }
  return "";
}

struct LoaderSql {
  std::string trials, params, values, reports, attrs;
};

std::array<LoaderSql, 3> make_loader_sql() {
  std::array<LoaderSql, 3> out;
  for (int i = 0; i < 3; ++i) {
    std::string w = where_of(static_cast<Select>(i));
    out[i].trials =
        "SELECT t.id, t.number, t.state, t.worker, t.heartbeat, t.start_time, t.end_time, t.fail_reason "
        "FROM trials t WHERE " + w + " ORDER BY t.number";
    out[i].params = "SELECT p.trial_id, p.name, p.kind, p.value FROM trials t "
                    "JOIN trial_params p ON p.trial_id = t.id WHERE " + w;
    out[i].values = "SELECT v.trial_id, v.idx, v.value FROM trials t "
                    "JOIN trial_values v ON v.trial_id = t.id WHERE " + w + " ORDER BY v.trial_id, v.idx";
    out[i].reports = "SELECT r.trial_id, r.step, r.metric, r.value FROM trials t "
                     "JOIN trial_reports r ON r.trial_id = t.id WHERE " + w + " ORDER BY r.trial_id, r.step, r.metric";
    out[i].attrs = "SELECT a.trial_id, a.key, a.value FROM trials t "
                   "JOIN trial_attrs a ON a.trial_id = t.id WHERE " + w;
  }
  return out;
}

const LoaderSql& loader_sql(Select s) {
  static const std::array<LoaderSql, 3> sql = make_loader_sql();
  return sql[static_cast<size_t>(s)];
}

// Reads trials with five queries in all (one per table), whatever their count: no query per trial.
std::vector<Trial> load_trials(Connection& c, Select sel, int64_t a, int64_t b = 0) {
  const LoaderSql& sql = loader_sql(sel);
  auto bind = [&](Query& q) {
    q.bind_int(1, a);
    if (sel == Select::ByStudyChangedSince) q.bind_int(2, b);
  };
  std::vector<Trial> out;
  std::unordered_map<int64_t, size_t> index;
  {
    Query q(c, sql.trials);
    bind(q);
    while (q.step()) {
      Trial t;
      t.id = q.i64(0);
      t.number = q.i64(1);
      t.state = search::trial_state_from_string(q.text(2));
      t.worker = q.text(3);
      t.heartbeat = q.f64_or_zero(4);
      t.start_time = q.f64_or_zero(5);
      t.end_time = q.f64_or_zero(6);
      t.fail_reason = q.text(7);
      index.emplace(t.id, out.size());
      out.push_back(std::move(t));
    }
  }
  if (out.empty()) return out;
  {
    Query q(c, sql.params);
    bind(q);
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it == index.end()) continue;
      std::string kind = q.text(2);
      search::Value v;
      if (kind == "float") v = q.f64(3);
      else if (kind == "int") v = q.i64(3);
      else if (kind == "bool") v = q.i64(3) != 0;
      else v = q.text(3);
      out[it->second].config.emplace(q.text(1), std::move(v));
    }
  }
  {
    Query q(c, sql.values);
    bind(q);
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it == index.end()) continue;
      auto& vals = out[it->second].values;
      auto idx = static_cast<size_t>(q.i64(1));
      if (vals.size() <= idx) vals.resize(idx + 1, std::numeric_limits<double>::quiet_NaN());
      vals[idx] = q.f64(2);
    }
  }
  {
    Query q(c, sql.reports);
    bind(q);
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it == index.end()) continue;
      out[it->second].reports.push_back(search::Report{q.i64(1), q.text(2), q.f64(3)});
    }
  }
  {
    Query q(c, sql.attrs);
    bind(q);
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it == index.end()) continue;
      out[it->second].attrs[q.text(1)] = q.text(2);
    }
  }
  return out;
}

Trial load_one(Connection& c, int64_t trial_id) {
  auto v = load_trials(c, Select::ById, trial_id);
  if (v.empty()) throw StoreError("SQLite store " + c.path() + ": no trial with id " + std::to_string(trial_id));
  return std::move(v.front());
}

// Loads objectives and attributes into already-read studies (two queries in all).
void fill_studies(Connection& c, std::vector<StudyInfo>& studies) {
  std::unordered_map<int64_t, size_t> index;
  for (size_t i = 0; i < studies.size(); ++i) index.emplace(studies[i].id, i);
  {
    Query q(c, "SELECT study_id, name, direction FROM study_objectives ORDER BY study_id, idx");
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it != index.end())
        studies[it->second].objectives.push_back(Objective{q.text(1), search::direction_from_string(q.text(2))});
    }
  }
  {
    Query q(c, "SELECT study_id, key, value FROM study_attrs");
    while (q.step()) {
      auto it = index.find(q.i64(0));
      if (it != index.end()) studies[it->second].attrs[q.text(1)] = q.text(2);
    }
  }
}

// What a trial write needs to know before touching the row.
struct TrialHead {
  int64_t study_id;
  int64_t number;
  TrialState state;
};

TrialHead trial_head(Connection& c, int64_t trial_id) {
  Query q(c, "SELECT study_id, number, state FROM trials WHERE id = ?1");
  q.bind_int(1, trial_id);
  if (!q.step()) throw StoreError("SQLite store " + c.path() + ": no trial with id " + std::to_string(trial_id));
  return TrialHead{q.i64(0), q.i64(1), search::trial_state_from_string(q.text(2))};
}

void refuse_if_finished(const Connection& c, const TrialHead& h, int64_t trial_id, const char* what) {
  if (search::is_finished(h.state))
    throw TrialFinishedError("trial " + std::to_string(h.number) + " (id " + std::to_string(trial_id) + ") is " +
                             search::to_string(h.state) + "; finished trials are immutable, so " + what +
                             " was refused (" + c.path() + ")");
}

// Bumps the study's change counter and returns the new value: the stamp of the trial row written in this transaction.
int64_t next_change(Connection& c, int64_t study_id) {
  Query q(c, "UPDATE studies SET change_seq = change_seq + 1 WHERE id = ?1 RETURNING change_seq");
  q.bind_int(1, study_id);
  if (!q.step()) throw StoreError("SQLite store " + c.path() + ": no study with id " + std::to_string(study_id));
  int64_t seq = q.i64(0);
  q.run();
  return seq;
}

void stamp(Connection& c, int64_t trial_id, int64_t seq) {
  Query q(c, "UPDATE trials SET change_seq = ?2 WHERE id = ?1");
  q.bind_int(1, trial_id).bind_int(2, seq).run();
}

void require_study(Connection& c, int64_t study_id) {
  Query q(c, "SELECT 1 FROM studies WHERE id = ?1");
  q.bind_int(1, study_id);
  if (!q.step()) throw StoreError("SQLite store " + c.path() + ": no study with id " + std::to_string(study_id));
}

std::string format_seconds(double s) {
  char buf[64];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.1f" : "%.0f", s);
  return buf;
}

}  // namespace

// ---- pool --------------------------------------------------------------------------------------------------------

class SqliteStore::Lease {
 public:
  Lease(SqliteStore& s, std::unique_ptr<Connection> c) : store_(&s), conn_(std::move(c)) {}
  Lease(Lease&& o) noexcept : store_(o.store_), conn_(std::move(o.conn_)) {}
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (conn_) store_->release(std::move(conn_));
  }
  Connection& operator*() { return *conn_; }
  Connection* operator->() { return conn_.get(); }

 private:
  SqliteStore* store_;
  std::unique_ptr<Connection> conn_;
};

std::unique_ptr<Connection> SqliteStore::open_connection() {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  auto c = std::make_unique<Connection>(memory_ ? ":memory:" : path_, flags, options_.busy_timeout_s);
  if (sqlite3_db_readonly(c->db(), "main") == 1)
    throw StoreError("SQLite store " + path_ + ": the database is read-only (Kestrel needs write access to the file "
                     "and its folder); nothing was changed");
  // Per-connection settings (journal_mode is a property of the file, set once when the schema is created).
  c->exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;", "configuring");
  // Replaces SQLite's auto-checkpoint (which runs inside the committing call) with a signal to checkpoint_loop.
  if (!memory_ && options_.background_checkpoint) sqlite3_wal_hook(c->db(), &SqliteStore::on_wal_commit, this);
  else if (!memory_) sqlite3_wal_autocheckpoint(c->db(), std::max(1, options_.checkpoint_pages));
  return c;
}

int SqliteStore::on_wal_commit(void* self, sqlite3* db, const char* name, int pages) {
  auto* store = static_cast<SqliteStore*>(self);
  int limit = std::max(1, store->options_.checkpoint_pages);
  int seen = store->ckpt_log_seen_.load(std::memory_order_relaxed);
  if (pages >= 4 * limit) {
    // The background thread is not keeping up (starved of CPU, or a writer that never pauses: SQLite restarts the
    // WAL from its beginning only when a write starts with every frame copied). Do what SQLite's own
    // auto-checkpoint does, here in the committing call; frames already copied are not copied again.
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= limit && (pages < seen || pages >= seen + limit / 2)) {
    // Not on every commit past the limit: only when half a limit of new frames arrived since the last checkpoint.
    std::lock_guard lock(store->ckpt_mutex_);
    store->ckpt_wanted_ = true;
    store->ckpt_cv_.notify_one();
  }
  return SQLITE_OK;
}

void SqliteStore::checkpoint_loop() {
  std::unique_ptr<Connection> c;
  std::unique_lock lock(ckpt_mutex_);
  for (;;) {
    ckpt_cv_.wait(lock, [&] { return ckpt_wanted_ || ckpt_stop_; });
    if (ckpt_stop_) return;
    ckpt_wanted_ = false;
    lock.unlock();
    try {
      if (!c) {
        c = std::make_unique<Connection>(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, 1.0);
        // A connection learns that the file is in WAL mode only when it first reads it; until then a checkpoint
        // call does nothing (and reports -1 frames).
        c->exec("SELECT count(*) FROM sqlite_master", "reading the schema");
      }
      // PASSIVE never blocks readers or writers; a busy or failed attempt is simply repeated after the next commits.
      int frames = -1;
      sqlite3_wal_checkpoint_v2(c->db(), "main", SQLITE_CHECKPOINT_PASSIVE, &frames, nullptr);
      if (frames >= 0) ckpt_log_seen_.store(frames, std::memory_order_relaxed);
    } catch (const std::exception&) {
      c.reset();
    }
    lock.lock();
  }
}

SqliteStore::Lease SqliteStore::acquire() {
  if (getpid() != pid_)
    throw StoreError("SQLite store " + path_ + ": a store opened before fork() cannot be used in the child process; "
                     "open a new store in the child");
  std::unique_lock lock(pool_mutex_);
  for (;;) {
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(c));
    }
    if (open_count_ < options_.max_connections) {
      ++open_count_;
      lock.unlock();
      try {
        return Lease(*this, open_connection());
      } catch (...) {
        lock.lock();
        --open_count_;
        pool_cv_.notify_one();
        throw;
      }
    }
    pool_cv_.wait(lock);
  }
}

void SqliteStore::release(std::unique_ptr<Connection> c) {
  c->rollback_quietly();
  std::lock_guard lock(pool_mutex_);
  idle_.push_back(std::move(c));
  pool_cv_.notify_one();
}

// ---- transactions ------------------------------------------------------------------------------------------------

template <class F>
auto SqliteStore::write_txn(F&& body) {
  using R = std::invoke_result_t<F&, Connection&>;
  std::unique_lock writer(write_mutex_);
  Lease c = acquire();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.busy_timeout_s);
  for (int attempt = 0;; ++attempt) {
    try {
      c->exec("BEGIN IMMEDIATE", "starting a write transaction");
      if constexpr (std::is_void_v<R>) {
        body(*c);
        c->exec("COMMIT", "committing");
        return;
      } else {
        R r = body(*c);
        c->exec("COMMIT", "committing");
        return r;
      }
    } catch (const BusyError&) {
      c->rollback_quietly();
      if (std::chrono::steady_clock::now() >= deadline)
        throw StoreError("SQLite store " + path_ + ": the database stayed locked by another connection or program "
                         "for " + format_seconds(options_.busy_timeout_s) +
                         " s (busy timeout); nothing was written. Retry when the other program has finished.");
      backoff(attempt);
    } catch (...) {
      c->rollback_quietly();
      throw;
    }
  }
}

template <class F>
auto SqliteStore::read_txn(F&& body) {
  using R = std::invoke_result_t<F&, Connection&>;
  Lease c = acquire();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.busy_timeout_s);
  for (int attempt = 0;; ++attempt) {
    try {
      c->exec("BEGIN", "starting a read transaction");
      R r = body(*c);
      c->exec("COMMIT", "ending a read transaction");
      return r;
    } catch (const BusyError&) {
      c->rollback_quietly();
      if (std::chrono::steady_clock::now() >= deadline)
        throw StoreError("SQLite store " + path_ + ": the database stayed locked by another connection or program "
                         "for " + format_seconds(options_.busy_timeout_s) + " s (busy timeout) while reading.");
      backoff(attempt);
    } catch (...) {
      c->rollback_quietly();
      throw;
    }
  }
}

// ---- open --------------------------------------------------------------------------------------------------------

SqliteStore::SqliteStore(const std::string& path, SqliteStoreOptions options)
    : path_(path), options_(std::move(options)), pid_(static_cast<int>(getpid())) {
  memory_ = path_ == ":memory:";
  // Connections are opened lazily, possibly after the process changed its working folder: pin the path now.
  if (!memory_ && !path_.empty()) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(path_, ec);
    if (!ec) path_ = abs.lexically_normal().string();
  }
  if (options_.max_connections < 1) options_.max_connections = 1;
  // Every connection to ":memory:" is a separate database: keep exactly one.
  if (memory_) options_.max_connections = 1;
  if (path_.empty()) throw StoreError("SQLite store: empty database path");
  open_and_check_schema();
  if (!memory_ && options_.background_checkpoint)
    checkpointer_ = std::make_unique<std::thread>([this] { checkpoint_loop(); });
}

SqliteStore::~SqliteStore() {
  if (getpid() != pid_) {
    // In a fork() child: never close the parent's handles (see Connection::abandon); the checkpoint thread exists
    // only in the parent.
    for (auto& c : idle_) c->abandon();
    (void)checkpointer_.release();
  } else if (checkpointer_) {
    {
      std::lock_guard lock(ckpt_mutex_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_one();
    checkpointer_->join();
  }
  idle_.clear();
}

void SqliteStore::open_and_check_schema() {
  namespace fs = std::filesystem;
  if (!memory_) {
    std::error_code ec;
    auto st = fs::status(path_, ec);
    if (fs::exists(st)) {
      if (!fs::is_regular_file(st))
        throw StoreError("SQLite store " + path_ + ": not a regular file (a folder or device?); refusing to open it");
      struct stat sb {};
      // access() alone is not enough: root may write a file whose mode says read-only, and we honour the mode.
      if (::stat(path_.c_str(), &sb) != 0 || access(path_.c_str(), R_OK | W_OK) != 0 || (sb.st_mode & 0222) == 0)
        throw StoreError("SQLite store " + path_ + ": the database file is read-only (Kestrel needs write access to "
                         "store trials); nothing was changed. Make it writable or use another --storage file.");
    } else {
      fs::path parent = fs::path(path_).parent_path();
      if (parent.empty()) parent = ".";
      if (!fs::is_directory(parent, ec))
        throw StoreError("SQLite store " + path_ + ": the folder " + parent.string() + " does not exist");
    }
    fs::path parent = fs::path(path_).parent_path();
    if (parent.empty()) parent = ".";
    if (access(parent.c_str(), W_OK | X_OK) != 0)
      throw StoreError("SQLite store " + path_ + ": the folder " + parent.string() +
                       " is not writable (SQLite keeps its -wal and -shm files next to the database); nothing was "
                       "changed");
  }

  // Looks at the file without writing anything: which tables exist, and our version if it is ours.
  struct Seen {
    int tables = 0;
    bool ours = false;
    int version = -1;
  };
  auto inspect = [](Connection& c) {
    Seen s;
    {
      Query q(c, "SELECT count(*), coalesce(sum(name = 'schema_version'), 0) FROM sqlite_master WHERE type = 'table'");
      if (q.step()) {
        s.tables = static_cast<int>(q.i64(0));
        s.ours = q.i64(1) > 0;
      }
    }
    if (s.ours) {
      Query q(c, "SELECT max(version) FROM schema_version");
      if (q.step() && !q.is_null(0)) s.version = static_cast<int>(q.i64(0));
    }
    return s;
  };
  auto refuse_foreign = [&](const Seen& s) {
    if (s.tables > 0 && !s.ours)
      throw StoreError("SQLite store " + path_ + ": this SQLite database belongs to another program (it has " +
                       std::to_string(s.tables) + " tables but no Kestrel schema_version); refusing to touch it. "
                       "Use a new file for Kestrel.");
    if (s.ours && s.version < 0)
      throw StoreError("SQLite store " + path_ + ": the schema_version table is empty; the file is damaged or not a "
                       "Kestrel database");
    if (s.version > kSqliteSchemaVersion)
      throw StoreError("SQLite store " + path_ + ": schema version " + std::to_string(s.version) +
                       " is newer than this build of Kestrel supports (" + std::to_string(kSqliteSchemaVersion) +
                       "); upgrade Kestrel to open it. Nothing was changed.");
  };

  Seen seen = read_txn(inspect);
  refuse_foreign(seen);
  if (seen.ours && seen.version == kSqliteSchemaVersion) return;

  // New or older file: ours to write. WAL first (it is a property of the file; a no-op if already set).
  {
    Lease c = acquire();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.busy_timeout_s);
    for (int attempt = 0;; ++attempt) {
      try {
        Query q(*c, "PRAGMA journal_mode = WAL");
        std::string mode = q.step() ? q.text(0) : "";
        if (!memory_ && mode != "wal")
          throw StoreError("SQLite store " + path_ + ": could not switch the database to WAL mode (got '" + mode +
                           "'); is it on a file system without shared-memory support?");
        break;
      } catch (const BusyError&) {
        if (std::chrono::steady_clock::now() >= deadline)
          throw StoreError("SQLite store " + path_ + ": the database stayed locked for " +
                           format_seconds(options_.busy_timeout_s) + " s while opening it (busy timeout)");
        backoff(attempt);
      }
    }
  }

  // Schema creation and migrations: one transaction, decided again under the write lock, since another process
  // may have created or migrated the file meanwhile.
  write_txn([&](Connection& c) {
    Seen s = inspect(c);
    refuse_foreign(s);
    if (!s.ours) {
      c.exec(kSchemaV1, "creating the Kestrel schema");
      return;
    }
    for (int v = s.version; v < kSqliteSchemaVersion; ++v) {
      const Migration* m = nullptr;
      for (const auto& cand : kMigrations)
        if (cand.from == v) m = &cand;
      if (!m)
        throw StoreError("SQLite store " + path_ + ": no migration from schema version " + std::to_string(v) +
                         " (this file was written by an unsupported Kestrel version)");
      try {
        c.exec(m->sql, "migrating the schema");
      } catch (const StoreError& e) {
        throw StoreError("SQLite store " + path_ + ": migration from schema version " + std::to_string(v) +
                         " failed and was rolled back (the file is unchanged): " + e.what());
      }
    }
  });
}

// ---- studies -----------------------------------------------------------------------------------------------------

StudyInfo SqliteStore::create_study(const std::string& name, const std::vector<Objective>& objectives,
                                    const std::string& space_json) {
  if (name.empty()) throw StoreError("SQLite store " + path_ + ": a study needs a non-empty name");
  if (objectives.empty())
    throw StoreError("SQLite store " + path_ + ": study '" + name + "' needs at least one objective");
  return write_txn([&](Connection& c) {
    {
      Query q(c, "SELECT 1 FROM studies WHERE name = ?1");
      q.bind_text(1, name);
      if (q.step())
        throw StoreError("SQLite store " + path_ + ": a study named '" + name +
                         "' already exists; load it (resume) or choose another name");
    }
    StudyInfo info;
    {
      Query q(c, "INSERT INTO studies (name, space_json) VALUES (?1, ?2)");
      q.bind_text(1, name).bind_text(2, space_json).run();
      info.id = sqlite3_last_insert_rowid(c.db());
    }
    for (size_t i = 0; i < objectives.size(); ++i) {
      Query q(c, "INSERT INTO study_objectives (study_id, idx, name, direction) VALUES (?1, ?2, ?3, ?4)");
      q.bind_int(1, info.id)
          .bind_int(2, static_cast<int64_t>(i))
          .bind_text(3, objectives[i].name)
          .bind_text(4, search::to_string(objectives[i].direction))
          .run();
    }
    info.name = name;
    info.objectives = objectives;
    info.space_json = space_json;
    return info;
  });
}

std::optional<StudyInfo> SqliteStore::find_study(const std::string& name) {
  return read_txn([&](Connection& c) -> std::optional<StudyInfo> {
    std::vector<StudyInfo> found;
    {
      Query q(c, "SELECT id, name, space_json FROM studies WHERE name = ?1");
      q.bind_text(1, name);
      if (!q.step()) return std::nullopt;
      found.push_back(StudyInfo{q.i64(0), q.text(1), {}, q.text(2), {}});
    }
    fill_studies(c, found);
    return std::move(found.front());
  });
}

std::vector<StudyInfo> SqliteStore::list_studies() {
  return read_txn([&](Connection& c) {
    std::vector<StudyInfo> out;
    {
      Query q(c, "SELECT id, name, space_json FROM studies ORDER BY id");
      while (q.step()) out.push_back(StudyInfo{q.i64(0), q.text(1), {}, q.text(2), {}});
    }
    fill_studies(c, out);
    return out;
  });
}

void SqliteStore::set_study_attr(int64_t study_id, const std::string& key, const std::string& value) {
  write_txn([&](Connection& c) {
    require_study(c, study_id);
    Query q(c, "INSERT INTO study_attrs (study_id, key, value) VALUES (?1, ?2, ?3) "
               "ON CONFLICT (study_id, key) DO UPDATE SET value = excluded.value");
    q.bind_int(1, study_id).bind_text(2, key).bind_text(3, value).run();
  });
}

// ---- trials ------------------------------------------------------------------------------------------------------

Trial SqliteStore::create_trial(int64_t study_id, const Config& config, TrialState state, const std::string& worker,
                                const std::map<std::string, std::string>& attrs) {
  if (state != TrialState::Running && state != TrialState::Waiting)
    throw StoreError("SQLite store " + path_ + ": a new trial must be RUNNING or WAITING, not " +
                     search::to_string(state));
  return write_txn([&](Connection& c) {
    Trial t;
    int64_t seq = 0;
    {
      Query q(c, "UPDATE studies SET next_number = next_number + 1, change_seq = change_seq + 1 WHERE id = ?1 "
                 "RETURNING next_number - 1, change_seq");
      q.bind_int(1, study_id);
      if (!q.step()) throw StoreError("SQLite store " + path_ + ": no study with id " + std::to_string(study_id));
      t.number = q.i64(0);
      seq = q.i64(1);
      q.run();
    }
    double now_s = now();
    t.state = state;
    t.worker = worker;
    if (state == TrialState::Running) t.start_time = t.heartbeat = now_s;
    {
      Query q(c, "INSERT INTO trials (study_id, number, state, worker, heartbeat, start_time, change_seq) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      q.bind_int(1, study_id).bind_int(2, t.number).bind_text(3, search::to_string(state)).bind_text(4, worker);
      if (state == TrialState::Running) q.bind_double(5, now_s).bind_double(6, now_s);
      else q.bind_null(5).bind_null(6);
      q.bind_int(7, seq).run();
      t.id = sqlite3_last_insert_rowid(c.db());
    }
    for (const auto& [name, v] : config) {
      Query q(c, "INSERT INTO trial_params (trial_id, name, kind, value) VALUES (?1, ?2, ?3, ?4)");
      q.bind_int(1, t.id).bind_text(2, name).bind_text(3, kind_of(v));
      if (auto d = std::get_if<double>(&v)) q.bind_double(4, *d);
      else if (auto i = std::get_if<int64_t>(&v)) q.bind_int(4, *i);
      else if (auto b = std::get_if<bool>(&v)) q.bind_int(4, *b ? 1 : 0);
      else q.bind_text(4, std::get<std::string>(v));
      q.run();
    }
    for (const auto& [key, value] : attrs) {
      Query q(c, "INSERT INTO trial_attrs (trial_id, key, value) VALUES (?1, ?2, ?3)");
      q.bind_int(1, t.id).bind_text(2, key).bind_text(3, value).run();
    }
    t.config = config;
    t.attrs = attrs;
    return t;
  });
}

std::optional<Trial> SqliteStore::claim_waiting(int64_t study_id, const std::string& worker) {
  return write_txn([&](Connection& c) -> std::optional<Trial> {
    int64_t id = -1;
    {
      Query q(c, "SELECT id FROM trials WHERE study_id = ?1 AND state = 'WAITING' ORDER BY number LIMIT 1");
      q.bind_int(1, study_id);
      if (!q.step()) return std::nullopt;
      id = q.i64(0);
    }
    int64_t seq = next_change(c, study_id);
    double now_s = now();
    Query q(c, "UPDATE trials SET state = 'RUNNING', worker = ?2, heartbeat = ?3, start_time = ?3, change_seq = ?4 "
               "WHERE id = ?1");
    q.bind_int(1, id).bind_text(2, worker).bind_double(3, now_s).bind_int(4, seq).run();
    return load_one(c, id);
  });
}

void SqliteStore::report(int64_t trial_id, int64_t step, const std::map<std::string, double>& metrics) {
  write_txn([&](Connection& c) {
    TrialHead h = trial_head(c, trial_id);
    refuse_if_finished(c, h, trial_id, "report");
    for (const auto& [metric, value] : metrics) {
      Query q(c, "INSERT INTO trial_reports (trial_id, step, metric, value) VALUES (?1, ?2, ?3, ?4) "
                 "ON CONFLICT (trial_id, step, metric) DO UPDATE SET value = excluded.value");
      q.bind_int(1, trial_id).bind_int(2, step).bind_text(3, metric).bind_double(4, value).run();
    }
    stamp(c, trial_id, next_change(c, h.study_id));
  });
}

void SqliteStore::heartbeat(int64_t trial_id) {
  write_txn([&](Connection& c) {
    TrialHead h = trial_head(c, trial_id);
    refuse_if_finished(c, h, trial_id, "heartbeat");
    int64_t seq = next_change(c, h.study_id);
    Query q(c, "UPDATE trials SET heartbeat = ?2, change_seq = ?3 WHERE id = ?1");
    q.bind_int(1, trial_id).bind_double(2, now()).bind_int(3, seq).run();
  });
}

void SqliteStore::set_trial_attr(int64_t trial_id, const std::string& key, const std::string& value) {
  write_txn([&](Connection& c) {
    TrialHead h = trial_head(c, trial_id);
    {
      Query q(c, "INSERT INTO trial_attrs (trial_id, key, value) VALUES (?1, ?2, ?3) "
                 "ON CONFLICT (trial_id, key) DO UPDATE SET value = excluded.value");
      q.bind_int(1, trial_id).bind_text(2, key).bind_text(3, value).run();
    }
    stamp(c, trial_id, next_change(c, h.study_id));
  });
}

void SqliteStore::finish(int64_t trial_id, TrialState state, const std::vector<double>& values,
                         const std::string& reason) {
  if (!search::is_finished(state))
    throw StoreError("SQLite store " + path_ + ": finish() needs COMPLETE, PRUNED or FAILED, not " +
                     search::to_string(state));
  write_txn([&](Connection& c) {
    TrialHead h = trial_head(c, trial_id);
    refuse_if_finished(c, h, trial_id, "finish");
    if (state == TrialState::Complete) {
      Query q(c, "SELECT count(*) FROM study_objectives WHERE study_id = ?1");
      q.bind_int(1, h.study_id);
      int64_t n = q.step() ? q.i64(0) : 0;
      if (static_cast<int64_t>(values.size()) != n)
        throw StoreError("SQLite store " + path_ + ": trial " + std::to_string(h.number) + " got " +
                         std::to_string(values.size()) + " values but its study has " + std::to_string(n) +
                         " objectives; nothing was written");
    }
    int64_t seq = next_change(c, h.study_id);
    {
      Query q(c, "UPDATE trials SET state = ?2, end_time = ?3, fail_reason = ?4, change_seq = ?5 WHERE id = ?1");
      q.bind_int(1, trial_id)
          .bind_text(2, search::to_string(state))
          .bind_double(3, now())
          .bind_text(4, reason)
          .bind_int(5, seq)
          .run();
    }
    for (size_t i = 0; i < values.size(); ++i) {
      Query q(c, "INSERT OR REPLACE INTO trial_values (trial_id, idx, value) VALUES (?1, ?2, ?3)");
      q.bind_int(1, trial_id).bind_int(2, static_cast<int64_t>(i)).bind_double(3, values[i]).run();
    }
  });
}

Trial SqliteStore::trial(int64_t trial_id) {
  return read_txn([&](Connection& c) { return load_one(c, trial_id); });
}

std::vector<Trial> SqliteStore::trials(int64_t study_id) {
  return read_txn([&](Connection& c) { return load_trials(c, Select::ByStudy, study_id); });
}

std::vector<Trial> SqliteStore::trials_changed_since(int64_t study_id, int64_t& cursor) {
  auto [out, seq] = read_txn([&](Connection& c) {
    int64_t s = 0;
    {
      Query q(c, "SELECT change_seq FROM studies WHERE id = ?1");
      q.bind_int(1, study_id);
      if (!q.step()) throw StoreError("SQLite store " + path_ + ": no study with id " + std::to_string(study_id));
      s = q.i64(0);
    }
    // The same snapshot gives both the rows and the counter, so nothing committed in between is skipped.
    return std::pair{load_trials(c, Select::ByStudyChangedSince, study_id, cursor), s};
  });
  cursor = std::max(cursor, seq);
  return out;
}

std::vector<Trial> SqliteStore::fail_stale(int64_t study_id, double stale_seconds) {
  return write_txn([&](Connection& c) {
    double now_s = now();
    struct Stale {
      int64_t id;
      std::string worker;
      double heartbeat;
    };
    std::vector<Stale> stale;
    {
      Query q(c, "SELECT id, worker, heartbeat FROM trials "
                 "WHERE study_id = ?1 AND state = 'RUNNING' AND heartbeat < ?2 ORDER BY number");
      q.bind_int(1, study_id).bind_double(2, now_s - stale_seconds);
      while (q.step()) stale.push_back(Stale{q.i64(0), q.text(1), q.f64_or_zero(2)});
    }
    std::vector<Trial> out;
    for (const auto& s : stale) {
      int64_t seq = next_change(c, study_id);
      std::string reason = "lost: no heartbeat for " + format_seconds(now_s - s.heartbeat) + " s (worker " +
                           (s.worker.empty() ? std::string("unknown") : s.worker) + ")";
      Query q(c, "UPDATE trials SET state = 'FAILED', end_time = ?2, fail_reason = ?3, change_seq = ?4 WHERE id = ?1");
      q.bind_int(1, s.id).bind_double(2, now_s).bind_text(3, reason).bind_int(4, seq).run();
    }
    for (const auto& s : stale) out.push_back(load_one(c, s.id));
    return out;
  });
}

double SqliteStore::now() { return options_.clock ? options_.clock() : system_now(); }

std::string SqliteStore::integrity_check() {
  return read_txn([&](Connection& c) {
    std::string out;
    Query q(c, "PRAGMA integrity_check");
    while (q.step()) {
      if (!out.empty()) out += "\n";
      out += q.text(0);
    }
    return out;
  });
}

int SqliteStore::schema_version() {
  return read_txn([&](Connection& c) {
    Query q(c, "SELECT max(version) FROM schema_version");
    return q.step() ? static_cast<int>(q.i64(0)) : -1;
  });
}

}  // namespace kestrel::store
