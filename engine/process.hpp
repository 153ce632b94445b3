// ChildProcess: one external command run in its own process group, stdout/stderr piped back, stoppable with
// SIGTERM then SIGKILL; plus resolve_executable() (PATH look-up with a clear reason when a command can't run).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kestrel::engine {

// Finds the file execvp would run for `name`: a name with a '/' is a path (relative to `cwd` when given, else to
// the current folder); otherwise each PATH entry is tried. Returns the path to run.
// Throws ConfigError with the reason: "command not found", "is a directory", "is not executable".
std::string resolve_executable(const std::string& name, const std::string& cwd = "");

struct SpawnOptions {
  std::vector<std::string> argv;           // argv[0] is resolved with resolve_executable()
  std::map<std::string, std::string> env;  // added to (or overriding) this process's environment
  std::string cwd;                         // working folder of the child; empty = ours
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // normal exit (then `code`), else killed by `signal`
  int code = 0;
  int signal = 0;
  bool ok() const { return exited && code == 0; }
  std::string describe() const;  // "exit code 3", "killed by signal 11 (SIGSEGV)"
};

// What this represents: one running child, leader of its own process group (so the whole tree it starts can be
// signalled at once), stdin from /dev/null, stdout and stderr on two pipes read by the owner.
//
// Why not a library: Debian 12 has no maintained C++ process library (no reproc, no subprocess packages);
// Boost.Process 1.74 (in libboost1.74-dev) can only terminate() with SIGKILL, which denies commands the SIGTERM
// grace period the design promises, and needs Boost.Asio for non-blocking reads. posix_spawn gives us the
// process group, a clean signal state and exec errors reported to the caller, in ~150 lines.
//
// Thread safety: one object is used by one thread. Different objects may be spawned concurrently from many
// threads (pipes are created close-on-exec so one child never inherits another's pipe ends).
// Destruction of a child still running kills its process group with SIGKILL and reaps it.
class ChildProcess {
 public:
  // Throws EvalError when the command cannot be started (with errno text).
  explicit ChildProcess(const SpawnOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Waits up to `timeout_s` for output, then delivers everything that is available to on_stdout / on_stderr
  // (in chunks, not lines). Returns false once both pipes reached end of file (then it returns at once).
  bool pump(double timeout_s, const std::function<void(std::string_view)>& on_stdout,
            const std::function<void(std::string_view)>& on_stderr);
  // Closes both pipes (a descendant that keeps writing then gets SIGPIPE).
  void close_pipes();

  // Non-blocking: true once the child has exited (and was reaped); status() is then valid.
  bool poll_exit();
  // Blocks until the child exits.
  ExitStatus wait();
  bool exited() const { return reaped_; }
  const ExitStatus& status() const { return status_; }

  // Sends `sig` to the child's whole process group (no-op when the group is gone).
  void signal_group(int sig);
  // SIGTERM to the group; if the child has not exited after `grace_s`, SIGKILL to the group. Reaps the child and
  // returns how it ended. Descendants left in the group are killed with SIGKILL in any case.
  ExitStatus terminate(double grace_s);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  bool reaped_ = false;
  ExitStatus status_;
};

// Splits a byte stream into lines ('\n', a trailing '\r' dropped). A line longer than `max_line` is cut there and
// delivered in pieces, so a child printing without newlines cannot make us hold unbounded memory.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 1 << 20) : max_line_(max_line) {}
  void feed(std::string_view chunk, const std::function<void(const std::string&)>& on_line);
  void finish(const std::function<void(const std::string&)>& on_line);  // delivers a last unterminated line

 private:
  size_t max_line_;
  std::string buf_;
};

}  // namespace kestrel::engine
