// SqliteStore: the conformance suite on a file and in memory, plus what only SQLite has: refusals of foreign,
// read-only, newer and locked files, migrations from version 0, crash safety under SIGKILL, and open_store URLs.
#include "store/sqlite_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.hpp"
#include "tests/store/store_conformance.hpp"

namespace kestrel::store::testing {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// ---- the conformance suite, instantiated -------------------------------------------------------------------------

StoreFactory sqlite_file_factory() {
  StoreFactory f;
  f.name = "SqliteFile";
  f.open = [](const std::string& dir, std::function<double()> clock) {
    SqliteStoreOptions o;
    o.clock = std::move(clock);
    return std::unique_ptr<Store>(std::make_unique<SqliteStore>(dir + "/kestrel.db", o));
  };
  f.integrity_check = [](Store& s) { return dynamic_cast<SqliteStore&>(s).integrity_check(); };
  return f;
}

StoreFactory sqlite_memory_factory() {
  StoreFactory f;
  f.name = "SqliteMemory";
  f.open = [](const std::string&, std::function<double()> clock) {
    SqliteStoreOptions o;
    o.clock = std::move(clock);
    return std::unique_ptr<Store>(std::make_unique<SqliteStore>(":memory:", o));
  };
  f.shared_between_processes = false;
  f.integrity_check = [](Store& s) { return dynamic_cast<SqliteStore&>(s).integrity_check(); };
  return f;
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformance, ::testing::Values(sqlite_file_factory(), sqlite_memory_factory()),
                         [](const ::testing::TestParamInfo<StoreFactory>& i) { return i.param.name; });

// ---- SQLite-specific ---------------------------------------------------------------------------------------------

namespace {

const std::vector<Objective> kOneMin = {Objective{"loss", search::Direction::Minimize}};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// A plain sqlite3 connection, standing in for another program that uses the same file.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db_));
  }
  ~RawDb() { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg + " in: " + sql);
    }
  }
  int64_t scalar(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db_));
    std::string v;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "kestrel-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = dir_ + "/k.db";
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  std::string dir_, db_;
};

std::string fixture_sql(const std::string& name) {
  return read_bytes(std::string(KESTREL_SOURCE_DIR) + "/tests/store/fixtures/" + name);
}

}  // namespace

TEST_F(SqliteStoreTest, NewFileIsInWalModeWithCurrentSchemaVersion) {
  { SqliteStore s(db_); EXPECT_EQ(s.schema_version(), kSqliteSchemaVersion); }
  RawDb raw(db_);
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.scalar("SELECT version FROM schema_version"), kSqliteSchemaVersion);
}

// Writes `n` trials back to back (about 11 WAL frames each) and returns the WAL file's peak size (the file keeps
// its peak size when SQLite restarts it from the beginning).
uintmax_t write_hot_loop(SqliteStore& s, const std::string& db, int n) {
  auto st = s.create_study("s", kOneMin, "{}");
  uintmax_t peak = 0;
  for (int i = 0; i < n; ++i) {
    Trial t = s.create_trial(st.id, {{"x", search::Value(1.0)}, {"y", search::Value(int64_t{2})}},
                             TrialState::Running, "w");
    s.finish(t.id, TrialState::Complete, {1.0});
    peak = std::max(peak, fs::file_size(db + "-wal"));
  }
  EXPECT_EQ(s.trials(st.id).size(), static_cast<size_t>(n));
  return peak;
}

TEST_F(SqliteStoreTest, BackgroundCheckpointsMoveTheWalIntoTheDatabaseFileWhileOpen) {
  SqliteStoreOptions o;
  o.checkpoint_pages = 1000;  // the writer's own catch-up starts at 4000 frames, which 300 trials stay below
  SqliteStore s(db_, o);
  write_hot_loop(s, db_, 300);
  // Without a checkpoint the database file keeps only what was there before (the schema, or nothing); the 300
  // trials take well over 20 pages. The checkpoint thread works asynchronously: wait for it (generously).
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (fs::file_size(db_) < 20 * 4096 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(fs::file_size(db_), 20u * 4096u);
  EXPECT_EQ(s.integrity_check(), "ok");
}

TEST_F(SqliteStoreTest, InlineCheckpointsKeepTheWalNearTheLimit) {
  SqliteStoreOptions o;
  o.checkpoint_pages = 100;
  o.background_checkpoint = false;
  SqliteStore s(db_, o);
  uintmax_t peak = write_hot_loop(s, db_, 300);  // about 3300 frames if the WAL never restarted
  EXPECT_LT(peak, 200u * (4096u + 24u)) << "WAL peaked at " << peak / 4120 << " frames";
  EXPECT_EQ(s.integrity_check(), "ok");
}

TEST_F(SqliteStoreTest, NanValuesAndReportsReadBackAsNan) {
  // SQLite stores a NaN REAL as NULL; the store reads NULL back as NaN rather than 0.
  SqliteStore s(db_);
  auto st = s.create_study("s", kOneMin, "{}");
  Trial t = s.create_trial(st.id, {}, TrialState::Running, "w");
  s.report(t.id, 0, {{"loss", std::nan("")}});
  s.finish(t.id, TrialState::Complete, {std::nan("")});
  Trial got = s.trial(t.id);
  ASSERT_EQ(got.values.size(), 1u);
  EXPECT_TRUE(std::isnan(got.values[0]));
  ASSERT_EQ(got.reports.size(), 1u);
  EXPECT_TRUE(std::isnan(got.reports[0].value));
}

TEST_F(SqliteStoreTest, FileThatIsNotADatabaseIsRefusedAndLeftUntouched) {
  std::string junk = "this is a CSV file, not a database\n1,2,3\n";
  junk += std::string(5000, 'x');
  write_bytes(db_, junk);
  try {
    SqliteStore s(db_);
    FAIL() << "opened a non-database file";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a SQLite database"));
    EXPECT_THAT(e.what(), HasSubstr(db_));
  }
  EXPECT_EQ(read_bytes(db_), junk);
  EXPECT_FALSE(fs::exists(db_ + "-wal"));
  EXPECT_THROW(open_store("sqlite://" + db_), StoreError);
  EXPECT_EQ(read_bytes(db_), junk);
}

TEST_F(SqliteStoreTest, ForeignSqliteDatabaseIsRefusedAndLeftUntouched) {
  {
    RawDb raw(db_);
    raw.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann');");
  }
  std::string before = read_bytes(db_);
  try {
    SqliteStore s(db_);
    FAIL() << "opened someone else's database";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another program"));
  }
  EXPECT_EQ(read_bytes(db_), before);
  RawDb raw(db_);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'"), 0);
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");
}

TEST_F(SqliteStoreTest, ReadOnlyFileIsRefusedOnOpenWithClearMessage) {
  {
    SqliteStore s(db_);
    auto st = s.create_study("s", kOneMin, "{}");
    s.create_trial(st.id, {}, TrialState::Running, "w");
  }
  std::string before = read_bytes(db_);
  fs::permissions(db_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  try {
    SqliteStore s(db_);
    FAIL() << "opened a read-only file";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("read-only"));
  }
  EXPECT_EQ(read_bytes(db_), before);
}

// Runs `fn` as an ordinary user: in a child switched to uid/gid 65534 when the tests run as root (root ignores
// file modes), else in this process. Returns fn's result, or a code >= 100 when the switch failed.
int as_unprivileged_user(const std::function<int()>& fn) {
  if (getuid() != 0) return fn();
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    int rc = 101;
    try {
      rc = fn();
    } catch (...) {
      rc = 102;
    }
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 103;
}

TEST_F(SqliteStoreTest, UserWithoutWriteAccessIsRefusedWithClearMessage) {
  { SqliteStore s(db_); s.create_study("s", kOneMin, "{}"); }
  std::string before = read_bytes(db_);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(db_, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                           fs::perms::others_read);  // 0644: readable, writable by its owner only
  std::string fresh = dir_ + "/new.db";              // the folder itself is not writable for others
  int rc = as_unprivileged_user([&] {
    auto refused_with = [](const std::string& path, const char* words) {
      try {
        SqliteStore s(path);
        return false;
      } catch (const StoreError& e) {
        return std::string(e.what()).find(words) != std::string::npos;
      }
    };
    if (!refused_with(db_, "read-only")) return 1;
    if (!refused_with(fresh, "not writable")) return 2;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(read_bytes(db_), before);
  EXPECT_FALSE(fs::exists(fresh));
}

TEST_F(SqliteStoreTest, MissingFolderIsRefused) {
  EXPECT_THROW(SqliteStore(dir_ + "/no/such/folder/k.db"), StoreError);
  EXPECT_FALSE(fs::exists(dir_ + "/no"));
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  { SqliteStore s(db_); s.create_study("s", kOneMin, "{}"); }
  { RawDb raw(db_); raw.exec("UPDATE schema_version SET version = 7"); }
  try {
    SqliteStore s(db_);
    FAIL() << "opened a newer schema";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("newer"));
    EXPECT_THAT(e.what(), HasSubstr("7"));
  }
  RawDb raw(db_);
  EXPECT_EQ(raw.scalar("SELECT version FROM schema_version"), 7);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM studies"), 1);
}

TEST_F(SqliteStoreTest, Version0FileIsMigratedAndKeepsItsTrials) {
  { RawDb raw(db_); raw.exec("BEGIN;" + fixture_sql("schema_v0.sql") + "COMMIT;"); }
  SqliteStore s(db_);
  EXPECT_EQ(s.schema_version(), 1);
  auto st = s.find_study("legacy");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->attrs.at("seed"), "42");
  auto ts = s.trials(st->id);
  ASSERT_EQ(ts.size(), 3u);
  EXPECT_EQ(ts[0].state, TrialState::Complete);
  EXPECT_EQ(ts[0].values, std::vector<double>{1.5});
  EXPECT_EQ(std::get<double>(ts[0].config.at("x")), 0.125);
  EXPECT_EQ(std::get<std::string>(ts[0].config.at("opt")), "sgd");
  EXPECT_EQ(ts[0].report_at("loss", 1), 1.5);
  EXPECT_EQ(ts[1].fail_reason, "exit code 1");
  EXPECT_EQ(ts[2].attrs.at("note"), "interrupted");
  // The change counters the migration added: cursor 0 sees every old trial, later writes are seen incrementally.
  int64_t cursor = 0;
  EXPECT_EQ(s.trials_changed_since(st->id, cursor).size(), 3u);
  Trial t = s.create_trial(st->id, {}, TrialState::Running, "new");
  EXPECT_EQ(t.number, 3);
  auto ch = s.trials_changed_since(st->id, cursor);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].id, t.id);
  auto lost = s.fail_stale(st->id, 60.0);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].number, 2);
  EXPECT_EQ(s.integrity_check(), "ok");
}

TEST_F(SqliteStoreTest, FailedMigrationIsRolledBackAndLeavesVersion0) {
  // A version-0 file that already has the column the migration adds: the ALTER fails midway.
  {
    RawDb raw(db_);
    raw.exec("BEGIN;" + fixture_sql("schema_v0.sql") + "COMMIT;");
    raw.exec("ALTER TABLE trials ADD COLUMN change_seq INTEGER");
  }
  try {
    SqliteStore s(db_);
    FAIL() << "a broken migration went through";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("rolled back"));
  }
  RawDb raw(db_);
  EXPECT_EQ(raw.scalar("SELECT version FROM schema_version"), 0);
  // The first statement of the migration (studies.change_seq) was undone too.
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM pragma_table_info('studies') WHERE name = 'change_seq'"), 0);
  EXPECT_EQ(raw.scalar("SELECT count(*) FROM trials"), 3);
}

TEST_F(SqliteStoreTest, WriteWaitsForAnotherProgramsLockAndThenSucceeds) {
  SqliteStore s(db_);
  auto st = s.create_study("s", kOneMin, "{}");
  RawDb other(db_);
  other.exec("BEGIN EXCLUSIVE; INSERT INTO study_attrs (study_id, key, value) VALUES (" + std::to_string(st.id) +
             ", 'other', 'yes');");
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    other.exec("COMMIT");
  });
  Trial t;
  try {
    t = s.create_trial(st.id, {}, TrialState::Running, "w");  // blocks until the other program commits
  } catch (...) {
    release.join();
    throw;
  }
  release.join();
  EXPECT_EQ(t.number, 0);
  EXPECT_EQ(s.find_study("s")->attrs.at("other"), "yes");
  EXPECT_EQ(s.trials(st.id).size(), 1u);
}

TEST_F(SqliteStoreTest, LockHeldPastTheTimeoutGivesClearErrorAndWritesNothing) {
  SqliteStoreOptions o;
  o.busy_timeout_s = 0.3;
  SqliteStore s(db_, o);
  auto st = s.create_study("s", kOneMin, "{}");
  RawDb other(db_);
  other.exec("BEGIN EXCLUSIVE");
  try {
    s.create_trial(st.id, {}, TrialState::Running, "w");
    FAIL() << "wrote through an exclusive lock";
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("locked"));
    EXPECT_THAT(e.what(), HasSubstr("nothing was written"));
  }
  EXPECT_TRUE(s.trials(st.id).empty());  // readers are not blocked in WAL mode
  other.exec("ROLLBACK");
  EXPECT_EQ(s.create_trial(st.id, {}, TrialState::Running, "w").number, 0);  // the number was not used up
}

TEST_F(SqliteStoreTest, StoreInheritedThroughForkIsRefusedInTheChild) {
  SqliteStore s(db_);
  auto st = s.create_study("s", kOneMin, "{}");
  pid_t pid = fork();
  if (pid == 0) {
    int rc = 1;
    try {
      s.create_trial(st.id, {}, TrialState::Running, "child");
    } catch (const StoreError& e) {
      rc = std::string(e.what()).find("fork") != std::string::npos ? 0 : 2;
    } catch (...) {
      rc = 3;
    }
    _exit(rc);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(s.trials(st.id).empty());
  EXPECT_EQ(s.create_trial(st.id, {}, TrialState::Running, "parent").number, 0);
  EXPECT_EQ(s.integrity_check(), "ok");
}

TEST_F(SqliteStoreTest, FourProcessesCreatingTheSameNewFileAtOnceAllSucceed) {
  // Workers started together on a database that does not exist yet: one creates the schema, the others wait for it.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> pids;
  for (int p = 0; p < 4; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) != 0) _exit(6);  // wait until the parent closes the pipe: all start together
      try {
        SqliteStore s(db_);
        auto st = s.create_study("study-" + std::to_string(p), kOneMin, "{}");
        for (int i = 0; i < 10; ++i) s.create_trial(st.id, {}, TrialState::Running, "p");
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", p, e.what());
        _exit(3);
      }
    }
    pids.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  SqliteStore s(db_);
  auto studies = s.list_studies();
  ASSERT_EQ(studies.size(), 4u);
  for (const auto& st : studies) EXPECT_EQ(s.trials(st.id).size(), 10u) << st.name;
  EXPECT_EQ(s.schema_version(), kSqliteSchemaVersion);
  EXPECT_EQ(s.integrity_check(), "ok");
}

// A writer killed by SIGKILL at arbitrary moments: every trial it saw committed is there exactly once, nothing else
// is half-written, and the file passes integrity_check.
TEST_F(SqliteStoreTest, SigkilledWriterLosesNoCommittedTrialAndLeavesFileSound) {
  int64_t study_id;
  {
    SqliteStore s(db_);
    study_id = s.create_study("s", kOneMin, "{}").id;
  }
  std::mt19937 rng(12345);
  std::set<int64_t> confirmed;  // trial numbers the child reported as finished
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      try {
        SqliteStore s(db_);
        for (;;) {
          Trial t = s.create_trial(study_id, {{"x", search::Value(0.5)}}, TrialState::Running, "victim");
          s.report(t.id, 0, {{"loss", 1.0}});
          s.finish(t.id, TrialState::Complete, {static_cast<double>(t.number)});
          int64_t n = t.number;
          if (write(fds[1], &n, sizeof n) != sizeof n) _exit(4);
        }
      } catch (...) {
        _exit(5);
      }
    }
    close(fds[1]);
    // Let it finish a random number of trials, then kill it in the middle of whatever it is doing.
    int wait_for = std::uniform_int_distribution<int>(3, 40)(rng);
    int64_t n;
    for (int got = 0; got < wait_for && read(fds[0], &n, sizeof n) == sizeof n; ++got) confirmed.insert(n);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    while (read(fds[0], &n, sizeof n) == sizeof n) confirmed.insert(n);
    close(fds[0]);
    EXPECT_TRUE(WIFSIGNALED(status)) << "child ended on its own, status " << status;

    SqliteStore s(db_);
    EXPECT_EQ(s.integrity_check(), "ok");
    std::map<int64_t, TrialState> numbers;
    for (const Trial& t : s.trials(study_id)) {
      EXPECT_TRUE(numbers.emplace(t.number, t.state).second) << "number used twice: " << t.number;
      if (t.state == TrialState::Complete) {
        EXPECT_EQ(t.values, std::vector<double>{static_cast<double>(t.number)});
        EXPECT_EQ(t.report_at("loss", 0), 1.0);
      }
    }
    for (int64_t c : confirmed) {
      ASSERT_TRUE(numbers.count(c)) << "confirmed trial " << c << " is missing";
      EXPECT_EQ(numbers[c], TrialState::Complete) << c;
    }
  }
  EXPECT_GE(confirmed.size(), 6u * 3u);
}

TEST_F(SqliteStoreTest, OpenStoreAcceptsSqliteUrlsAndDbPaths) {
  {
    auto s = open_store("sqlite://" + db_);  // sqlite:///abs: the path keeps its leading slash
    s->create_study("via-url", kOneMin, "{}");
  }
  EXPECT_TRUE(fs::exists(db_));
  EXPECT_TRUE(open_store(db_)->find_study("via-url").has_value());
  EXPECT_TRUE(open_store("sqlite:///" + db_)->find_study("via-url").has_value());  // sqlite:////abs (SQLAlchemy)

  auto cwd = fs::current_path();
  fs::current_path(dir_);
  try {
    open_store("sqlite://rel.db")->create_study("rel", kOneMin, "{}");
    open_store("bare.db")->create_study("bare", kOneMin, "{}");
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
  EXPECT_TRUE(fs::exists(dir_ + "/rel.db"));
  EXPECT_TRUE(fs::exists(dir_ + "/bare.db"));

  auto mem = open_store("sqlite://:memory:");  // private to the object: nothing on disk
  auto st = mem->create_study("m", kOneMin, "{}");
  EXPECT_EQ(mem->create_trial(st.id, {}, TrialState::Running, "w").number, 0);
  EXPECT_FALSE(fs::exists(":memory:"));
}

TEST_F(SqliteStoreTest, RelativePathKeepsNamingTheSameFileAfterTheWorkingFolderChanges) {
  auto cwd = fs::current_path();
  fs::current_path(dir_);
  std::unique_ptr<Store> s;
  try {
    s = open_store("sqlite://rel.db");
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
  auto st = s->create_study("s", kOneMin, "{}");
  // Several threads at once make the store open more connections, now from another working folder.
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) s->create_trial(st.id, {}, TrialState::Running, "w");
    });
  for (auto& t : threads) t.join();
  EXPECT_FALSE(fs::exists(cwd / "rel.db"));
  SqliteStore check(dir_ + "/rel.db");
  EXPECT_EQ(check.trials(st.id).size(), 20u);
}

TEST(SqlitePathOf, NamesTheFileOfEachUrlForm) {
  EXPECT_EQ(sqlite_path_of("sqlite:///abs/k.db"), "/abs/k.db");
  EXPECT_EQ(sqlite_path_of("sqlite:////abs/k.db"), "/abs/k.db");
  EXPECT_EQ(sqlite_path_of("sqlite://rel/k.db"), "rel/k.db");
  EXPECT_EQ(sqlite_path_of("sqlite://:memory:"), ":memory:");
  EXPECT_EQ(sqlite_path_of("runs/k.sqlite3"), "runs/k.sqlite3");
  EXPECT_EQ(sqlite_path_of("postgresql://host/db"), std::nullopt);
  EXPECT_THROW(sqlite_path_of("sqlite://"), StoreError);
  EXPECT_THROW(sqlite_path_of("results.csv"), StoreError);
}

TEST_F(SqliteStoreTest, OpenSqliteStorePassesItsOptions) {
  SqliteStoreOptions o;
  o.clock = [] { return 1234.5; };
  auto s = open_sqlite_store("sqlite://" + db_, o);
  EXPECT_EQ(s->now(), 1234.5);
  EXPECT_THROW(open_sqlite_store("postgresql://h/db", o), StoreError);
}

TEST_F(SqliteStoreTest, OpenStoreRefusesUnknownSchemesWithClearMessages) {
  try {
    open_store("postgresql://user@host/db");
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("postgresql:// is not built in this build"));
  }
  try {
    open_store("mysql://host/db");
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown scheme"));
  }
  try {
    open_store("sqlite:///kestrel-no-such-folder-4711/k.db");  // relative in SQLAlchemy's reading, absolute here
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_THAT(e.what(), HasSubstr("write sqlite://kestrel-no-such-folder-4711/k.db"));
  }
  EXPECT_THROW(open_store(dir_ + "/results.csv"), StoreError);
  EXPECT_THROW(open_store("sqlite://"), StoreError);
  EXPECT_FALSE(fs::exists(dir_ + "/results.csv"));
}

}  // namespace kestrel::store::testing
