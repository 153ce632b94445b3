// optimize(): n_jobs threads each looping ask / evaluate / tell until a budget ends, without ever starting more
// trials than n_trials needs (counting this study's finished and running trials in every process sharing it).
#include "engine/runner.hpp"
#include "tuners/multifidelity.hpp"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <exception>
#include <filesystem>
#include <limits>
#include <set>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "tuners/tuner.hpp"

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
    for (auto& t : study_.store().trials_changed_since(study_.id(), cursor_)) {
      auto it = state_.find(t.number);
      if (it != state_.end()) forget(it->first, it->second);
      state_[t.number] = t.state;
      count(t);
      if (keep_records_) records_[t.number] = std::move(t);
    }
  }
  // Keeps every trial's latest record too (the checkpoint lifecycle reads parents and runs retention on them).
  // Call before the first sync().
  void keep_records() { keep_records_ = true; }
  const std::map<int64_t, Trial>& records() const { return records_; }
  const Trial* record(int64_t number) const {
    auto it = records_.find(number);
    return it == records_.end() ? nullptr : &it->second;
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
  bool keep_records_ = false;
  std::map<int64_t, Trial> records_;
};

std::optional<int64_t> restore_parent(const Trial& t) {
  auto it = t.attrs.find(tuners::kAttrRestoreFrom);
  if (it == t.attrs.end()) return std::nullopt;
  try {
    size_t used = 0;
    int64_t n = std::stoll(it->second, &used);
    if (used == it->second.size()) return n;
  } catch (const std::exception&) {
  }
  return std::nullopt;  // prepare() reports the bad value
}

bool non_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) != fs::directory_iterator();
}

// How long a restoring trial waits for another process to seal its parent's checkpoint (the parent is told
// finished a moment before its folder is sealed) before failing it as never sealed.
constexpr int kForeignSealWaitMs = 5000;

class Runner {
 public:
  Runner(Study& study, Evaluator& evaluator, const RunOptions& o)
      : study_(study), evaluator_(evaluator), o_(o), tally_(study), start_(Clock::now()) {
    // Reclaiming stale trials is a write; a quarter of the stale age (at most 1 s) between calls is plenty.
    reclaim_every_ = std::min(1.0, study_.options().stale_after / 4.0);
    track_study_ = o_.n_trials > 0 || o_.target.has_value();
    if (o_.checkpoints && !o_.runs_dir.empty()) {
      ck_.emplace((fs::path(o_.runs_dir) / study_.options().name).string(), o_.checkpoint_policy);
      tally_.keep_records();
      if (o_.checkpoint_policy.keep_best > 0) {
        // A second instance of the study's tuner, only to ask which checkpoints its future proposals may restore:
        // its state is a function of the history alone (tuners/tuner.hpp), so it answers as the study's would.
        try {
          refs_tuner_ = tuners::make_tuner(study_.options().tuner, study_.options().tuner_params,
                                           study_.options().seed);
          refs_ = dynamic_cast<const tuners::CheckpointUser*>(refs_tuner_.get());
        } catch (const std::exception&) {
          refs_ = nullptr;  // a tuner made elsewhere (NAS controllers) restores nothing
        }
      }
    }
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
        if (ck_) unsealed_.insert(h.number());
      }
      run_one(h);
    }
  }

  // Fills the context's checkpoint fields. Throws EvalError (the trial fails with it) when the parent's checkpoint
  // is missing, corrupt, deleted or was never sealed.
  void launch(TrialHandle& h, EvalContext& ctx) {
    std::vector<Trial> parent;
    if (auto p = restore_parent(h.record())) {
      std::unique_lock lk(mu_);
      for (int waited = 0;;) {
        tally_.sync();
        const Trial* t = tally_.record(*p);
        if (!t || !search::is_finished(t->state) || t->attrs.count(kAttrCheckpoint) ||
            t->attrs.count(kAttrCheckpointDeleted)) {
          if (t) parent.push_back(*t);
          break;
        }
        // Told but not sealed yet: ours seal right after the evaluator returns; another process's get a while.
        if (!unsealed_.count(*p)) {
          if (waited >= kForeignSealWaitMs || !non_empty_dir(ck_->dir_of(*p))) {
            parent.push_back(*t);
            break;
          }
          waited += 100;
        }
        cv_.wait_for(lk, std::chrono::milliseconds(100));
      }
    }
    CheckpointLaunch l = ck_->prepare(h.record(), parent);
    ctx.checkpoint_dir = std::move(l.checkpoint_dir);
    ctx.restore_from = std::move(l.restore_from);
    ctx.env = std::move(l.env);
  }

  // Records the trial's checkpoint manifest, or removes its folder when the evaluator wrote nothing there (so a
  // later restore from it reruns from scratch instead of failing, and empty folders do not pile up).
  void seal(TrialHandle& h) {
    try {
      const std::string dir = ck_->dir_of(h.number());
      if (non_empty_dir(dir)) {
        h.set_attr(kAttrCheckpoint, ck_->seal(h.number()));
      } else {
        std::error_code ec;
        fs::remove(dir, ec);
      }
    } catch (const std::exception&) {
      // Left unsealed: a trial restoring from it fails with "never sealed" rather than trusting unknown files.
    }
    std::lock_guard lk(mu_);
    unsealed_.erase(h.number());
    cv_.notify_all();
  }

  // Keep-best-k retention between trials, under the lock that asking takes: every trial asked before it is in the
  // store with its restore_from (pinned); every later one is among the tuner's may_restore (pinned as future).
  void retain() {
    std::lock_guard lk(mu_);
    tally_.sync();
    std::vector<Trial> trials;
    trials.reserve(tally_.records().size());
    for (const auto& [n, t] : tally_.records()) trials.push_back(t);
    std::set<int64_t> future(unsealed_.begin(), unsealed_.end());
    if (refs_) {
      tuners::History hist;
      hist.space = &study_.options().space;
      hist.objectives = study_.options().objectives;
      for (const auto& t : trials) hist.trials.push_back(&t);
      auto more = refs_->may_restore(hist);
      future.insert(more.begin(), more.end());
    }
    auto deleted = ck_->apply_retention(trials, study_.options().objectives.at(0), future);
    const std::string reason =
        "retention: not among the best " + std::to_string(o_.checkpoint_policy.keep_best) + " and not pinned";
    for (int64_t n : deleted)
      if (const Trial* t = tally_.record(n)) study_.store().set_trial_attr(t->id, kAttrCheckpointDeleted, reason);
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
          if (ck_) launch(h, ctx);
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
      if (ck_) seal(h);
      record = h.record();
      if (!is_finished(record.state)) record = study_.store().trial(h.id());
    } catch (...) {
      std::lock_guard lk(mu_);
      if (!error_) error_ = std::current_exception();
      --in_flight_;
      unsealed_.erase(h.number());
      set_stop("error");
      return;
    }
    if (ck_ && o_.checkpoint_policy.keep_best > 0) {
      try {
        retain();
      } catch (...) {
        std::lock_guard lk(mu_);
        if (!error_) error_ = std::current_exception();
        set_stop("error");
      }
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

  std::optional<Checkpoints> ck_;                 // the lifecycle; nullopt when off
  std::unique_ptr<tuners::Tuner> refs_tuner_;     // owns refs_
  const tuners::CheckpointUser* refs_ = nullptr;  // the tuner's future restore references, if it has any
  std::set<int64_t> unsealed_;                    // our trials from ask until sealed (guarded by mu_)
};

}  // namespace

RunSummary optimize(Study& study, Evaluator& evaluator, const RunOptions& options) {
  Runner r(study, evaluator, options);
  return r.run();
}

}  // namespace kestrel::engine
