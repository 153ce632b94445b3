// ChildProcess over posix_spawn (own process group, piped stdout/stderr, SIGTERM-then-SIGKILL) and the PATH
// look-up used both before a sweep (validation) and when a trial starts.
#include "engine/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/error.hpp"

extern char** environ;

namespace kestrel::engine {
namespace fs = std::filesystem;

namespace {

// Why a path can't be executed, or "" when it can.
std::string exec_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "is a directory";
  if (!S_ISREG(st.st_mode)) return "is not a regular file";
  if (::access(path.c_str(), X_OK) != 0) return "is not executable (" + std::string(std::strerror(errno)) + ")";
  return "";
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  if (signal == 0) return "exit status lost (the child was reaped elsewhere, e.g. SIGCHLD set to SIG_IGN)";
  const char* abbrev = ::sigabbrev_np(signal);
  return "killed by signal " + std::to_string(signal) + (abbrev ? " (SIG" + std::string(abbrev) + ")" : "");
}

std::string resolve_executable(const std::string& name, const std::string& cwd) {
  if (name.empty()) throw ConfigError("the command is empty");
  if (name.find('/') != std::string::npos) {
    fs::path p(name);
    if (p.is_relative() && !cwd.empty()) p = fs::path(cwd) / p;
    std::string why = exec_problem(p.string());
    if (!why.empty()) {
      if (why == std::strerror(ENOENT)) throw ConfigError("command not found: '" + p.string() + "' does not exist");
      throw ConfigError("command '" + p.string() + "' " + why);
    }
    return p.string();
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::string first_problem;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0) {
      std::string why = exec_problem(candidate);
      if (why.empty()) return candidate;
      if (first_problem.empty()) first_problem = "'" + candidate + "' " + why;
    }
    start = end + 1;
  }
  if (!first_problem.empty()) throw ConfigError("command '" + name + "' cannot run: " + first_problem);
  throw ConfigError("command not found: '" + name + "' is not in PATH (" + path + ")");
}

ChildProcess::ChildProcess(const SpawnOptions& options) {
  if (options.argv.empty()) throw EvalError("cannot start a command with an empty argv");
  std::string exe;
  try {
    exe = resolve_executable(options.argv[0], options.cwd);
  } catch (const ConfigError& e) {
    throw EvalError(e.what());
  }

  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw EvalError(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    throw EvalError(std::string("pipe: ") + std::strerror(e));
  }

  // Environment: ours with the overrides applied.
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : options.env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, options.cwd.c_str());
  // Own process group (pgid = pid) so the whole tree can be signalled; default dispositions and an empty mask, so
  // a runner thread that blocks or ignores signals (SIGINT handling, SIGPIPE) does not pass that on.
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    std::string where = options.cwd.empty() ? "" : " in '" + options.cwd + "'";
    throw EvalError("cannot start '" + exe + "'" + where + ": " + std::strerror(rc));
  }
  pid_ = pid;
  out_fd_ = out[0];
  err_fd_ = err[0];
  ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  close_pipes();
  if (pid_ > 0 && !reaped_) {
    signal_group(SIGKILL);
    wait();
  }
}

void ChildProcess::close_pipes() {
  close_fd(out_fd_);
  close_fd(err_fd_);
}

bool ChildProcess::pump(double timeout_s, const std::function<void(std::string_view)>& on_stdout,
                        const std::function<void(std::string_view)>& on_stderr) {
  if (out_fd_ < 0 && err_fd_ < 0) return false;
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  int ms = timeout_s <= 0 ? 0 : static_cast<int>(std::ceil(timeout_s * 1000.0));
  int rc = ::poll(fds, n, ms);
  if (rc < 0) {
    if (errno == EINTR) return true;
    throw EvalError(std::string("poll: ") + std::strerror(errno));
  }
  char buf[65536];
  for (int i = 0; i < n; ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    bool is_out = fds[i].fd == out_fd_;
    int& fd = is_out ? out_fd_ : err_fd_;
    // Read until the pipe is empty (EAGAIN) or closed (0).
    for (;;) {
      ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        (is_out ? on_stdout : on_stderr)(std::string_view(buf, static_cast<size_t>(got)));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got == 0 || (got < 0 && errno != EAGAIN)) close_fd(fd);
      break;
    }
  }
  return out_fd_ >= 0 || err_fd_ >= 0;
}

bool ChildProcess::poll_exit() {
  if (reaped_) return true;
  int ws = 0;
  pid_t r = ::waitpid(pid_, &ws, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = decode(ws);
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (a SIGCHLD handler set to SIG_IGN); the status is lost.
    reaped_ = true;
    status_ = ExitStatus{};
    status_.exited = false;
  }
  return reaped_;
}

ExitStatus ChildProcess::wait() {
  while (!reaped_) {
    int ws = 0;
    pid_t r = ::waitpid(pid_, &ws, 0);
    if (r == pid_) {
      reaped_ = true;
      status_ = decode(ws);
    } else if (r < 0 && errno != EINTR) {
      reaped_ = true;
      status_ = ExitStatus{};
    }
  }
  return status_;
}

void ChildProcess::signal_group(int sig) {
  // The group outlives its leader while descendants remain; kill() on a gone group just fails with ESRCH.
  if (pid_ > 0) ::kill(-pid_, sig);
}

ExitStatus ChildProcess::terminate(double grace_s) {
  if (!reaped_) {
    signal_group(SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(grace_s, 0.0));
    // Keep draining the pipes meanwhile: a child blocked writing to a full pipe could not act on SIGTERM.
    auto discard = [](std::string_view) {};
    while (!poll_exit() && std::chrono::steady_clock::now() < deadline) {
      if (!pump(0.02, discard, discard)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  signal_group(SIGKILL);
  return wait();
}

void LineSplitter::feed(std::string_view chunk, const std::function<void(const std::string&)>& on_line) {
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    size_t take = nl == std::string_view::npos ? chunk.size() : nl;
    size_t room = max_line_ - std::min(max_line_, buf_.size());
    if (take > room) {
      buf_.append(chunk.substr(0, room));
      on_line(buf_);
      buf_.clear();
      chunk.remove_prefix(room);
      continue;
    }
    buf_.append(chunk.substr(0, take));
    if (nl == std::string_view::npos) break;
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    on_line(buf_);
    buf_.clear();
    chunk.remove_prefix(nl + 1);
  }
}

void LineSplitter::finish(const std::function<void(const std::string&)>& on_line) {
  if (!buf_.empty()) {
    if (buf_.back() == '\r') buf_.pop_back();
    on_line(buf_);
    buf_.clear();
  }
}

}  // namespace kestrel::engine
