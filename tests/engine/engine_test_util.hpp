// Helpers shared by the engine tests: a temporary folder, a Study over a SQLite file in it, and a check that a
// process has ended (zombies count as ended, since their reaping belongs to whoever inherited them).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "engine/study.hpp"
#include "store/store.hpp"

namespace kestrel::engine::testing {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("kestrel_engine_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Writes "a,b,label" rows of two Gaussian blobs for the trainer-evaluator tests: row i has label i % 2, centre
// (+cx, +cy) for label 1 and (-cx, -cy) for label 0, standard deviation sd, from a fixed seed (4).
inline void write_blobs_csv(const fs::path& path, int n, double sd, double cx, double cy) {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> noise(0.0, sd);
  std::ofstream csv(path);
  csv << "a,b,label\n";
  for (int i = 0; i < n; ++i) {
    int y = i % 2;
    csv << (y ? cx : -cx) + noise(rng) << "," << (y ? cy : -cy) + noise(rng) << "," << y << "\n";
  }
}

inline std::shared_ptr<store::Store> open_store_in(const TempDir& d, const std::string& file = "k.db") {
  return store::open_store("sqlite:///" + (d.path / file).string());
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string script(const std::string& name) {
  return std::string(KESTREL_SOURCE_DIR) + "/tests/engine/scripts/" + name;
}

// True while `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return ::kill(pid, 0) == 0;
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = content.rfind(')');
  if (close == std::string::npos || close + 2 >= content.size()) return false;
  return content[close + 2] != 'Z';
}

// Waits (generously; this bounds a hang, it does not measure speed) for `pid` to be gone.
inline bool process_gone_eventually(pid_t pid, double max_wait_s = 10.0) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !process_alive(pid);
}

// True while a live (non-zombie) process is in process group `pgid`. kill(-pgid, 0) is no use here: zombies
// reparented to a PID 1 that does not reap still count as group members for it.
inline bool group_alive(pid_t pgid) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream stat(e.path() / "stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = content.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(content.substr(close + 2));
    char state = 0;
    long ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z') return true;
  }
  return false;
}

inline bool group_gone_eventually(pid_t pgid, double max_wait_s = 10.0) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!group_alive(pgid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return !group_alive(pgid);
}

inline pid_t read_pid(const fs::path& p) {
  std::string s = read_file(p);
  return s.empty() ? -1 : static_cast<pid_t>(std::stol(s));
}

}  // namespace kestrel::engine::testing
