// Helpers for tests that drive the real `kestrel` binary: temporary folders, running the binary (fork/exec) with
// captured output and a deadline, and raw SQLite queries that check the database independently of the store code.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace kestrel::testing {

namespace fs = std::filesystem;

inline std::string kestrel_bin() {
  const char* p = std::getenv("KESTREL_BIN");
  if (p && *p) return p;
  return std::string(KESTREL_BINARY_DIR) + "/cli/kestrel";
}

inline std::string source_dir() { return KESTREL_SOURCE_DIR; }

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kestrel-cli-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    // Read-only files a test made must not block the clean-up.
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto& e : fs::recursive_directory_iterator(path_, ec))
      fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (executable) ::chmod(path.c_str(), 0755);
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

struct CliResult {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// A started `kestrel` process with stdout and stderr going to files in `dir`.
struct CliProcess {
  pid_t pid = -1;
  std::string out_path, err_path;
};

inline CliProcess spawn_cli(const std::vector<std::string>& args, const std::string& cwd, const std::string& tag = "cli") {
  static int counter = 0;
  CliProcess p;
  p.out_path = cwd + "/." + tag + "-" + std::to_string(++counter) + ".out";
  p.err_path = cwd + "/." + tag + "-" + std::to_string(counter) + ".err";
  std::string bin = kestrel_bin();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int out = ::open(p.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(p.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  p.pid = pid;
  return p;
}

// Waits for the process; past `timeout_s` it is killed and the result's code is 128 + SIGKILL.
inline int wait_cli(pid_t pid, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

inline CliResult collect(const CliProcess& p, int code) {
  CliResult r;
  r.code = code;
  r.out = read_file(p.out_path);
  r.err = read_file(p.err_path);
  return r;
}

inline CliResult run_cli(const std::vector<std::string>& args, const std::string& cwd, double timeout_s = 60) {
  CliProcess p = spawn_cli(args, cwd);
  int code = wait_cli(p.pid, timeout_s);
  return collect(p, code);
}

inline ::testing::AssertionResult exited_with(const CliResult& r, int code) {
  if (r.code == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "exit code " << r.code << " (expected " << code << ")\n--- stdout:\n"
                                       << r.out << "\n--- stderr:\n"
                                       << r.err;
}

// Raw SQLite access (independent of SqliteStore) for invariant checks.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
    sqlite3_busy_timeout(db_, 10000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Rows of text cells.
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("bad SQL: ") + sqlite3_errmsg(db_));
    std::vector<std::vector<std::string>> rows;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const unsigned char* t = sqlite3_column_text(st, i);
        row.push_back(t ? reinterpret_cast<const char*>(t) : "");
      }
      rows.push_back(row);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db_));
    return rows;
  }
  void exec(const std::string& sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      throw std::runtime_error("exec failed: " + m);
    }
  }
  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

inline std::string integrity_check(const std::string& path) {
  RawDb db(path);
  auto rows = db.query("PRAGMA integrity_check");
  return rows.empty() ? "" : rows[0][0];
}

inline bool pid_alive(pid_t pid) { return ::kill(pid, 0) == 0; }

}  // namespace kestrel::testing
