// The live progress line and the per-trial log lines of `kestrel run`.
// The live line is redrawn with \r and cleared with ESC[K, so a shorter line never leaves old characters behind.
#include "cli/progress.hpp"

#include <cmath>

#include "cli/output.hpp"
#include "engine/constraints.hpp"

namespace kestrel::cli {

Progress::Progress(std::ostream& out, bool live, std::vector<search::Objective> objectives, int64_t total,
                   int64_t done_before, std::optional<double> best_before)
    : out_(out),
      live_(live),
      objectives_(std::move(objectives)),
      total_(total),
      done_(done_before),
      best_(best_before),
      start_(std::chrono::steady_clock::now()) {
  if (live_) thread_ = std::thread([this] { redraw_loop(); });
}

Progress::~Progress() { stop(); }

void Progress::trial_started() {
  std::lock_guard lk(mu_);
  ++running_;
}

void Progress::trial_ended(const search::Trial& t) {
  std::lock_guard lk(mu_);
  if (running_ > 0) --running_;
  bool counts = t.state == search::TrialState::Complete || t.state == search::TrialState::Pruned;
  if (counts) {
    ++done_;
    ++done_in_run_;
  }
  if (t.state == search::TrialState::Failed) ++failed_;
  bool improved = false;
  // An infeasible trial (the sweep's constraints) is never the best, however good its value.
  const bool feasible = kestrel::engine::is_feasible(t);
  if (t.state == search::TrialState::Complete && !t.values.empty() && std::isfinite(t.values[0]) && feasible) {
    double s = objectives_.empty() ? 1.0 : search::minimize_sign(objectives_[0].direction);
    if (!best_ || s * t.values[0] < s * *best_) {
      best_ = t.values[0];
      best_number_ = t.number;
      improved = true;
    }
  }
  std::string msg = "trial " + std::to_string(t.number) + " " + search::to_string(t.state);
  std::string vals = values_inline(t, objectives_);
  if (!vals.empty()) msg += " " + vals;
  if (t.end_time > 0 && t.start_time > 0) msg += " (" + short_duration(t.end_time - t.start_time) + ")";
  msg += "  " + params_inline(t.config);
  if (!t.fail_reason.empty() && t.state != search::TrialState::Complete) msg += "  reason: " + t.fail_reason;
  if (t.state == search::TrialState::Complete && !feasible) msg += "  [infeasible]";
  if (improved && done_in_run_ > 1) msg += "  [new best]";
  if (live_) {
    // Failures and improvements scroll above the live line; the rest only update it.
    if (t.state == search::TrialState::Failed || improved) out_ << "\r\x1b[K" << msg << "\n";
    draw_locked();
  } else {
    std::string tail = "[" + std::to_string(done_) + (total_ > 0 ? "/" + std::to_string(total_) : "") + "]";
    out_ << tail << " " << msg << "\n";
    out_.flush();
  }
}

std::string Progress::line() const {
  std::lock_guard lk(mu_);
  return line_locked();
}

std::string Progress::line_locked() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string s = std::to_string(done_) + (total_ > 0 ? "/" + std::to_string(total_) : "") + " done";
  s += ", " + std::to_string(running_) + " running";
  if (failed_ > 0) s += ", " + std::to_string(failed_) + " failed";
  if (best_) {
    s += " | best " + short_number(*best_);
    if (best_number_ >= 0) s += " (#" + std::to_string(best_number_) + ")";
  }
  s += " | elapsed " + short_duration(elapsed);
  if (total_ > 0 && done_in_run_ > 0 && done_ < total_) {
    double eta = elapsed / static_cast<double>(done_in_run_) * static_cast<double>(total_ - done_);
    s += " | ETA " + short_duration(eta);
  }
  return s;
}

void Progress::draw_locked() {
  out_ << "\r\x1b[K" << line_locked();
  out_.flush();
}

void Progress::redraw_loop() {
  std::unique_lock lk(mu_);
  while (!stopped_) {
    draw_locked();
    cv_.wait_for(lk, std::chrono::milliseconds(250));
  }
}

void Progress::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (live_) {
    std::lock_guard lk(mu_);
    draw_locked();
    out_ << "\n";
    out_.flush();
  }
}

}  // namespace kestrel::cli
