// Progress: what `kestrel run` shows while a sweep runs. On a terminal, one live line (done/total, running, best so
// far, elapsed, ETA) redrawn in place; elsewhere (a pipe, a log file), one line per finished trial.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "search/trial.hpp"

namespace kestrel::cli {

// What this represents: the display of one run. Thread safety: trial_started/trial_ended may be called from any
// runner thread; a background thread redraws the live line (terminal mode only) until stop().
class Progress {
 public:
  // `total`: the study's trial budget (0 = none); `done_before`: COMPLETE+PRUNED trials already in the study;
  // `best_before`: the best first-objective value already stored, if any.
  Progress(std::ostream& out, bool live, std::vector<search::Objective> objectives, int64_t total, int64_t done_before,
           std::optional<double> best_before);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void trial_started();
  void trial_ended(const search::Trial& t);
  // Ends the live line (and the redraw thread). Idempotent.
  void stop();

  // The live line's text (without \r), for tests and the final redraw.
  std::string line() const;

 private:
  void redraw_loop();
  std::string line_locked() const;
  void draw_locked();

  std::ostream& out_;
  bool live_;
  std::vector<search::Objective> objectives_;
  int64_t total_;
  int64_t done_;
  int64_t failed_ = 0;
  int running_ = 0;
  int64_t done_in_run_ = 0;
  std::optional<double> best_;
  int64_t best_number_ = -1;
  std::chrono::steady_clock::time_point start_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace kestrel::cli
