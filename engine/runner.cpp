// optimize(): n_jobs threads each looping ask / evaluate / tell until a budget ends, without ever starting more
// trials than n_trials needs (counting this study's finished and running trials in every process sharing it).
#include "engine/runner.hpp"
#include "tuners/multifidelity.hpp"

#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <set>
#include <thread>
#include <vector>

#include "common/error.hpp"

namespace kestrel::engine {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// The study as every process sees it, kept in step through the store's incremental view (O(changes) per call),
// so that budget checks stay cheap at 10k trials and still count other workers' trials.
class StudyTally {
 public:
  explicit StudyTally(Study& s) : study_(s) {}

  void sync() {
    for (const auto& t : study_.store().trials_changed_since(study_.id(), cursor_)) {
      auto it = state_.find(t.number);
      if (it != state_.end()) forget(it->first, it->second);
      state_[t.number] = t.state;
      count(t);
    }
  }
  int64_t done() const { return done_; }  // COMPLETE + PRUNED
  int64_t max_number() const { return state_.empty() ? -1 : state_.rbegin()->first; }
  int64_t waiting() const { return waiting_; }
  const std::set<int64_t>& running() const { return running_; }
  int64_t running_before(int64_t number) const {
    return std::distance(running_.begin(), running_.lower_bound(number));
  }
  std::optional<double> best() const { return best_; }

 private:
  void forget(int64_t number, TrialState s) {
    if ((s == TrialState::Complete || s == TrialState::Pruned) && !priors_.count(number)) --done_;
    if (s == TrialState::Running) running_.erase(number);
    if (s == TrialState::Waiting) --waiting_;
  }
  void count(const Trial& t) {
    // Warm-start priors (copied from another study) are not this study's trials: n_trials counts new trials
    // only, and a prior reaching the target does not end a run that has not measured anything yet. An
    // infeasible trial (constraints) cannot be the best either.
    bool prior = is_warm_start(t);
    if (prior) priors_.insert(t.number);
    if ((t.state == TrialState::Complete || t.state == TrialState::Pruned) && !prior) ++done_;
    if (t.state == TrialState::Running) running_.insert(t.number);
    if (t.state == TrialState::Waiting) ++waiting_;
    if (t.state == TrialState::Complete && !t.values.empty() && !prior && is_feasible(t)) {
      double s = search::minimize_sign(study_.options().objectives[0].direction);
      if (!best_ || s * t.values[0] < s * *best_) best_ = t.values[0];
    }
  }

  Study& study_;
  int64_t cursor_ = 0;
  std::map<int64_t, TrialState> state_;
  std::set<int64_t> priors_;  // numbers of warm-start priors
  int64_t done_ = 0, waiting_ = 0;
  std::set<int64_t> running_;
  std::optional<double> best_;
};

class Runner {
 public:
  Runner(Study& study, Evaluator& evaluator, const RunOptions& o)
      : study_(study), evaluator_(evaluator), o_(o), tally_(study), start_(Clock::now()) {
    // Reclaiming stale trials is a write; a quarter of the stale age (at most 1 s) between calls is plenty.
    reclaim_every_ = std::min(1.0, study_.options().stale_after / 4.0);
    track_study_ = o_.n_trials > 0 || o_.target.has_value();
  }

  RunSummary run() {
    int n = std::max(1, o_.n_jobs);
    std::vector<std::thread> threads;
    threads.reserve(n - 1);
    for (int i = 1; i < n; ++i) threads.emplace_back([this] { worker(); });
    worker();
    for (auto& t : threads) t.join();
    if (error_) std::rethrow_exception(error_);
    RunSummary s;
    s.completed = completed_;
    s.pruned = pruned_;
    s.failed = failed_;
    s.stop_reason = stop_reason_;
    s.elapsed_s = elapsed();
    return s;
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  void set_stop(const std::string& why) {
    if (stop_reason_.empty()) stop_reason_ = why;
    cv_.notify_all();
  }

  bool reached_target(double v) const {
    if (!o_.target) return false;
    return study_.options().objectives[0].direction == search::Direction::Minimize ? v <= *o_.target
                                                                                    : v >= *o_.target;
  }

  void maybe_reclaim() {
    double now = elapsed();
    if (now - last_reclaim_ < reclaim_every_) return;
    last_reclaim_ = now;
    study_.reclaim_stale();
  }

  // With mu_ held: true when this worker may ask for one more trial; false (with stop_reason_ set) when the run is
  // over. Waits while the trials still running would fill the n_trials budget: one of them may yet fail.
  bool may_ask(std::unique_lock<std::mutex>& lk) {
    for (;;) {
      if (!stop_reason_.empty()) return false;
      if (o_.stop && o_.stop->load()) return set_stop("stopped"), false;
      if (o_.timeout_s > 0 && elapsed() >= o_.timeout_s) return set_stop("timeout"), false;
      if (!track_study_) return true;
      tally_.sync();
      if (tally_.best() && reached_target(*tally_.best())) return set_stop("target"), false;
      if (o_.n_trials <= 0) return true;
      if (tally_.done() >= o_.n_trials) return set_stop("n_trials"), false;
      if (tally_.done() + static_cast<int64_t>(tally_.running().size()) < o_.n_trials) return true;
      // Every remaining slot is held by a running trial (ours or another process's). Ours notify on finish;
      // another process's are polled, and reclaimed if that process died.
      maybe_reclaim();
      cv_.wait_for(lk, std::chrono::milliseconds(100));
    }
  }

  void worker() {
    try {
      worker_loop();
    } catch (...) {
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
      set_stop("error");
    }
  }

  void worker_loop() {
    for (;;) {
      TrialHandle h;
      {
        std::unique_lock lk(mu_);
        if (!may_ask(lk)) return;
        try {
          maybe_reclaim();
          h = study_.ask();
        } catch (const tuners::SpaceExhausted&) {
          set_stop("exhausted");
          return;
        } catch (const tuners::NotReady&) {
          // A bracket or generation waits for running trials (ours notify on finish; other workers' are polled).
          cv_.wait_for(lk, std::chrono::milliseconds(100));
          continue;
        } catch (...) {
          if (!error_) error_ = std::current_exception();
          set_stop("error");
          return;
        }
        // Another process may have asked at the same moment: the trials numbered before ours win the last slots.
        // Numbers are assigned in order, so when ours directly follows the last one we saw and no WAITING trial
        // could have been claimed meanwhile, nothing happened in between and the check before asking holds.
        bool raced = h.number() != tally_.max_number() + 1 || tally_.waiting() > 0;
        if (o_.n_trials > 0 && raced) {
          tally_.sync();
          if (tally_.done() + tally_.running_before(h.number()) >= o_.n_trials) {
            lk.unlock();
            finish_quietly(h, "surplus: the n_trials budget was filled by other workers before this trial started");
            continue;
          }
        }
        ++in_flight_;
      }
      run_one(h);
    }
  }

  // Tells FAILED, tolerating a trial that another worker already failed as lost.
  void finish_quietly(TrialHandle& h, const std::string& reason) {
    try {
      if (!h.told()) h.tell_failed(reason);
    } catch (const TrialFinishedError&) {
    }
  }

  void run_one(TrialHandle& h) {
    EvalContext ctx;
    ctx.stop = o_.stop;
    Trial record;
    try {
      fs::path dir = fs::path(o_.runs_dir) / study_.options().name / ("trial_" + std::to_string(h.number()));
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) {
        finish_quietly(h, "cannot create trial folder '" + dir.string() + "': " + ec.message());
      } else {
        ctx.trial_dir = dir.string();
        try {
          evaluator_.evaluate(h, ctx);
        } catch (const TrialPruned& e) {
          if (!h.told()) h.tell_pruned(e.what());
        } catch (const TrialFinishedError&) {
          // The store says the trial is already finished (reclaimed as lost by another worker): nothing to tell.
        } catch (const std::exception& e) {
          finish_quietly(h, e.what());
        } catch (...) {
          finish_quietly(h, "the evaluator threw a non-standard exception");
        }
        finish_quietly(h, "evaluator '" + evaluator_.name() + "' returned without a result");
      }
      record = h.record();
      if (!is_finished(record.state)) record = study_.store().trial(h.id());
    } catch (...) {
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
      --in_flight_;
      set_stop("error");
      return;
    }

    {
      std::lock_guard lk(mu_);
      --in_flight_;
      if (record.state == TrialState::Complete) ++completed_;
      if (record.state == TrialState::Pruned) ++pruned_;
      if (record.state == TrialState::Failed) ++failed_;
      if (record.state == TrialState::Complete && !record.values.empty() && is_feasible(record) &&
          reached_target(record.values[0]))
        set_stop("target");
      if (o_.max_failed > 0 && failed_ >= o_.max_failed) set_stop("max_failed");
      cv_.notify_all();
    }
    if (o_.on_trial_end) {
      std::lock_guard lk(callback_mu_);
      try {
        o_.on_trial_end(record);
      } catch (...) {
        std::lock_guard lk2(mu_);
        if (!error_) error_ = std::current_exception();
        set_stop("error");
      }
    }
  }

  Study& study_;
  Evaluator& evaluator_;
  const RunOptions& o_;

  std::mutex mu_;  // guards everything below, the tally and asking
  std::condition_variable cv_;
  StudyTally tally_;
  Clock::time_point start_;
  double reclaim_every_ = 1.0;
  double last_reclaim_ = -std::numeric_limits<double>::infinity();
  bool track_study_ = false;
  int64_t in_flight_ = 0;
  int64_t completed_ = 0, pruned_ = 0, failed_ = 0;
  std::string stop_reason_;
  std::exception_ptr error_;

  std::mutex callback_mu_;  // serializes on_trial_end
};

}  // namespace

RunSummary optimize(Study& study, Evaluator& evaluator, const RunOptions& options) {
  Runner r(study, evaluator, options);
  return r.run();
}

}  // namespace kestrel::engine
