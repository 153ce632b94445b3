// The runner waits when a tuner is not ready (a Hyperband bracket waiting for running trials) instead of stopping.
// Several jobs over a budget-owning tuner end by exhausting its brackets, with every trial finished.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/runner.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;

TEST(RunnerWaits, HyperbandWithThreeJobsWaitsForBracketsAndEndsExhausted) {
  TempDir d;
  StudyOptions o;
  o.name = "hb";
  o.space = SearchSpace({search::ParamSpec::uniform("x", -1, 1)});
  o.tuner = "hyperband";
  o.tuner_params = {{"min_resource", 1}, {"max_resource", 9}, {"eta", 3}, {"iterations", 1}};
  o.heartbeat_interval = 0;
  Study s(open_store_in(d), o);
  std::atomic<int> in_flight{0}, max_in_flight{0};
  CallbackEvaluator ev([&](TrialHandle& t) {
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    --in_flight;
    double x = t.get_double("x");
    return std::vector<double>{x * x};
  });
  RunOptions r;
  r.n_jobs = 3;
  r.runs_dir = (d.path / "runs").string();
  auto summary = optimize(s, ev, r);
  EXPECT_EQ(summary.stop_reason, "exhausted");
  EXPECT_EQ(summary.failed, 0);
  EXPECT_GT(summary.completed, 0);
  for (const auto& t : s.trials()) EXPECT_EQ(t.state, TrialState::Complete) << "trial " << t.number;
  EXPECT_GE(max_in_flight.load(), 2);  // the jobs really ran in parallel
}
