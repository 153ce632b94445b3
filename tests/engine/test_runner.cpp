// Tests of optimize(): every budget (n_trials exact under 4 threads, timeout, target, max_failed, external stop,
// exhausted space), failures and exceptions failing one trial only, resume counting, and stale trials of others.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "engine/runner.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using search::ParamSpec;
using ::testing::HasSubstr;

namespace {

StudyOptions options(const std::string& tuner = "random") {
  StudyOptions o;
  o.name = "run";
  o.space = SearchSpace({ParamSpec::uniform("x", -5, 5)});
  o.tuner = tuner;
  o.seed = 11;
  o.heartbeat_interval = 0;
  return o;
}

RunOptions run_options(const TempDir& d, int64_t n_trials, int n_jobs = 1) {
  RunOptions r;
  r.n_trials = n_trials;
  r.n_jobs = n_jobs;
  r.runs_dir = (d.path / "runs").string();
  return r;
}

std::map<TrialState, int> count_states(Study& s) {
  std::map<TrialState, int> m;
  for (const auto& t : s.trials()) ++m[t.state];
  return m;
}

void nap(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

TEST(Runner, NTrialsIsExactWithFourJobs) {
  TempDir d;
  Study s(open_store_in(d), options());
  std::atomic<int> in_flight{0}, max_in_flight{0};
  CallbackEvaluator ev([&](TrialHandle& t) {
    int now = ++in_flight;
    int prev = max_in_flight.load();
    while (now > prev && !max_in_flight.compare_exchange_weak(prev, now)) {
    }
    nap(5);
    --in_flight;
    double x = t.get_double("x");
    return std::vector<double>{x * x};
  });
  RunSummary r = optimize(s, ev, run_options(d, 23, 4));
  EXPECT_EQ(r.stop_reason, "n_trials");
  EXPECT_EQ(r.completed, 23);
  auto states = count_states(s);
  EXPECT_EQ(states[TrialState::Complete], 23);
  EXPECT_EQ(s.trials().size(), 23u);  // never overshoots: no trial beyond the budget was even asked
  EXPECT_GE(max_in_flight.load(), 2);  // the jobs really ran concurrently
  EXPECT_LE(max_in_flight.load(), 4);
}

TEST(Runner, EveryTrialGetsItsFolder) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle& t) { return std::vector<double>{t.get_double("x")}; });
  optimize(s, ev, run_options(d, 3));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(fs::is_directory(d.path / "runs" / "run" / ("trial_" + std::to_string(i))));
}

TEST(Runner, FailingTrialFailsAloneWithTheExceptionMessage) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle& t) -> std::vector<double> {
    if (t.number() % 3 == 1) throw std::runtime_error("diverged at epoch 2");
    return {t.get_double("x")};
  });
  RunSummary r = optimize(s, ev, run_options(d, 10, 2));
  EXPECT_EQ(r.stop_reason, "n_trials");
  EXPECT_EQ(r.completed, 10);  // failures don't count toward n_trials; the sweep went on
  EXPECT_GE(r.failed, 3);
  for (const auto& t : s.trials()) {
    if (t.state == TrialState::Failed) {
      EXPECT_EQ(t.fail_reason, "diverged at epoch 2");
    }
  }
  EXPECT_EQ(count_states(s)[TrialState::Failed], r.failed);
}

TEST(Runner, TrialPrunedExceptionCountsAsPrunedTowardNTrials) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle& t) -> std::vector<double> {
    t.report(0, 1.0);
    if (t.number() % 2 == 0) throw TrialPruned("pruned by the objective");
    return {t.get_double("x")};
  });
  RunSummary r = optimize(s, ev, run_options(d, 6));
  EXPECT_EQ(r.completed + r.pruned, 6);
  EXPECT_EQ(r.pruned, 3);
  auto all = s.trials();
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[0].state, TrialState::Pruned);
  EXPECT_EQ(all[0].fail_reason, "pruned by the objective");
}

TEST(Runner, EvaluatorThatThrowsOrForgetsToTellFailsOnlyThatTrial) {
  TempDir d;
  Study s(open_store_in(d), options());
  struct Odd : Evaluator {
    void evaluate(TrialHandle& t, const EvalContext&) override {
      if (t.number() == 0) throw EvalError("bad output");
      if (t.number() == 1) return;  // forgets to tell
      t.tell(1.0);
    }
    std::string name() const override { return "odd"; }
  } ev;
  RunSummary r = optimize(s, ev, run_options(d, 2));
  auto all = s.trials();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].fail_reason, "bad output");
  EXPECT_THAT(all[1].fail_reason, HasSubstr("returned without a result"));
  EXPECT_EQ(r.completed, 2);
  EXPECT_EQ(r.failed, 2);
}

TEST(Runner, MaxFailedStopsTheRun) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle&) -> std::vector<double> { throw std::runtime_error("always broken"); });
  RunOptions ro = run_options(d, 100);
  ro.max_failed = 3;
  RunSummary r = optimize(s, ev, ro);
  EXPECT_EQ(r.stop_reason, "max_failed");
  EXPECT_EQ(r.failed, 3);
  EXPECT_EQ(s.trials().size(), 3u);
}

TEST(Runner, TargetStopsOnceReached) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle& t) {
    double x = t.get_double("x");
    return std::vector<double>{x * x};
  });
  RunOptions ro = run_options(d, 10000);
  ro.target = 0.25;  // |x| <= 0.5: 10% of the range, so reached long before 10000 trials
  RunSummary r = optimize(s, ev, ro);
  EXPECT_EQ(r.stop_reason, "target");
  auto all = s.trials();
  EXPECT_LT(all.size(), 10000u);
  ASSERT_FALSE(all.empty());
  EXPECT_LE(all.back().values.at(0), 0.25);  // the last trial is the one that reached it
  for (size_t i = 0; i + 1 < all.size(); ++i) EXPECT_GT(all[i].values.at(0), 0.25);
}

TEST(Runner, TargetAlreadyReachedByAResumedStudyRunsNothing) {
  TempDir d;
  auto store = open_store_in(d);
  {
    Study s(store, options());
    auto h = s.ask();
    h.tell(0.0);
  }
  Study s(store, options());
  CallbackEvaluator ev([](TrialHandle&) { return std::vector<double>{1.0}; });
  RunOptions ro = run_options(d, 10);
  ro.target = 0.5;
  RunSummary r = optimize(s, ev, ro);
  EXPECT_EQ(r.stop_reason, "target");
  EXPECT_EQ(s.trials().size(), 1u);
}

TEST(Runner, TimeoutStopsAskingAndFinishesRunningTrials) {
  TempDir d;
  Study s(open_store_in(d), options());
  CallbackEvaluator ev([](TrialHandle& t) {
    nap(20);
    return std::vector<double>{t.get_double("x")};
  });
  RunOptions ro = run_options(d, 0, 2);
  ro.timeout_s = 0.2;
  RunSummary r = optimize(s, ev, ro);
  EXPECT_EQ(r.stop_reason, "timeout");
  EXPECT_GE(r.completed, 1);
  auto states = count_states(s);
  EXPECT_EQ(states[TrialState::Running], 0);  // every asked trial was told before return
  EXPECT_EQ(states[TrialState::Complete], r.completed);
}

TEST(Runner, ExternalStopEndsTheRunAndReachesEvaluators) {
  TempDir d;
  Study s(open_store_in(d), options());
  std::atomic<bool> stop{false};
  std::atomic<bool> saw_stop_in_ctx{false};
  struct Ev : Evaluator {
    std::atomic<bool>* stop;
    std::atomic<bool>* saw;
    void evaluate(TrialHandle& t, const EvalContext& ctx) override {
      if (t.number() == 2) stop->store(true);
      if (ctx.stopping()) saw->store(true);
      t.tell(1.0);
    }
    std::string name() const override { return "ev"; }
  } ev;
  ev.stop = &stop;
  ev.saw = &saw_stop_in_ctx;
  RunOptions ro = run_options(d, 100);
  ro.stop = &stop;
  RunSummary r = optimize(s, ev, ro);
  EXPECT_EQ(r.stop_reason, "stopped");
  EXPECT_EQ(s.trials().size(), 3u);
  EXPECT_TRUE(saw_stop_in_ctx.load());
}

TEST(Runner, ExhaustedFiniteSpaceStopsWithExhausted) {
  TempDir d;
  StudyOptions o = options("grid");
  o.space = SearchSpace({ParamSpec::categorical("c", {std::string("a"), std::string("b")}),
                         ParamSpec::integer("k", 1, 2)});
  Study s(open_store_in(d), o);
  CallbackEvaluator ev([](TrialHandle& t) { return std::vector<double>{static_cast<double>(t.get_int("k"))}; });
  RunSummary r = optimize(s, ev, run_options(d, 10, 2));
  EXPECT_EQ(r.stop_reason, "exhausted");
  EXPECT_EQ(r.completed, 4);
  std::set<std::string> keys;
  for (const auto& t : s.trials()) keys.insert(o.space.key(t.config));
  EXPECT_EQ(keys.size(), 4u);
}

TEST(Runner, NTrialsCountsTrialsStoredBeforeThisRun) {
  TempDir d;
  auto store = open_store_in(d);
  CallbackEvaluator ev([](TrialHandle& t) { return std::vector<double>{t.get_double("x")}; });
  {
    Study s(store, options());
    EXPECT_EQ(optimize(s, ev, run_options(d, 5)).completed, 5);
  }
  Study s(store, options());
  RunSummary r = optimize(s, ev, run_options(d, 8, 3));
  EXPECT_EQ(r.completed, 3);
  EXPECT_EQ(s.trials().size(), 8u);
  RunSummary again = optimize(s, ev, run_options(d, 8, 3));
  EXPECT_EQ(again.completed, 0);
  EXPECT_EQ(again.stop_reason, "n_trials");
}

TEST(Runner, WaitsForAnotherWorkersTrialAndReclaimsItWhenStale) {
  TempDir d;
  auto store = open_store_in(d);
  StudyOptions o = options();
  o.stale_after = 0.3;
  // Another worker (another Study on the same store) took the last slot and then went silent.
  StudyOptions other = o;
  other.worker = "other:1";
  Study dead(store, other);
  TrialHandle orphan = dead.ask();
  Study s(store, o);
  CallbackEvaluator ev([](TrialHandle& t) { return std::vector<double>{t.get_double("x")}; });
  RunSummary r = optimize(s, ev, run_options(d, 1));
  EXPECT_EQ(r.stop_reason, "n_trials");
  EXPECT_EQ(r.completed, 1);
  auto all = s.trials();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].state, TrialState::Failed);
  EXPECT_THAT(all[0].fail_reason, HasSubstr("lost"));
  EXPECT_EQ(all[1].state, TrialState::Complete);
  EXPECT_THROW(orphan.tell(1.0), TrialFinishedError);
}

TEST(Runner, OnTrialEndSeesEveryFinishedTrialOnce) {
  TempDir d;
  Study s(open_store_in(d), options());
  std::mutex mu;
  std::multiset<int64_t> seen;
  CallbackEvaluator ev([](TrialHandle& t) -> std::vector<double> {
    if (t.number() == 3) throw std::runtime_error("x");
    return {t.get_double("x")};
  });
  RunOptions ro = run_options(d, 8, 4);
  ro.on_trial_end = [&](const Trial& t) {
    std::lock_guard lk(mu);
    EXPECT_TRUE(search::is_finished(t.state));
    seen.insert(t.number);
  };
  optimize(s, ev, ro);
  auto all = s.trials();
  EXPECT_EQ(seen.size(), all.size());
  for (const auto& t : all) EXPECT_EQ(seen.count(t.number), 1u);
}

TEST(Runner, TwoWorkersSharingAStudyStopAtExactlyNTrials) {
  TempDir d;
  // Two workers with their own store connections (as two processes would have) race for the last slots.
  auto run_worker = [&](const std::string& worker, RunSummary* out) {
    StudyOptions o = options();
    o.worker = worker;
    Study s(open_store_in(d), o);
    CallbackEvaluator ev([](TrialHandle& t) {
      nap(2);
      return std::vector<double>{t.get_double("x")};
    });
    *out = optimize(s, ev, run_options(d, 30, 2));
  };
  RunSummary a, b;
  std::thread ta(run_worker, "a:1", &a), tb(run_worker, "b:2", &b);
  ta.join();
  tb.join();
  Study s(open_store_in(d), options());
  auto states = count_states(s);
  EXPECT_EQ(states[TrialState::Complete], 30);
  EXPECT_EQ(states[TrialState::Running], 0);
  EXPECT_EQ(a.completed + b.completed, 30);
  for (const auto& t : s.trials())
    if (t.state == TrialState::Failed) {
      EXPECT_THAT(t.fail_reason, HasSubstr("surplus"));
    }
  EXPECT_EQ(a.stop_reason, "n_trials");
  EXPECT_EQ(b.stop_reason, "n_trials");
}
