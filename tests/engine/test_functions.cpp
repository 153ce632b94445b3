// Tests of the built-in benchmark functions (known optima, no value below them) and FunctionEvaluator (learning
// curves reported step by step, pruning, budgets), plus the LineSplitter and PATH look-up of engine/process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "common/error.hpp"
#include "engine/functions.hpp"
#include "engine/process.hpp"
#include "engine/runner.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using ::testing::HasSubstr;

TEST(BenchmarkFunctions, KnownMinimizersGiveTheOptimum) {
  for (const auto& name : benchmark_function_names()) {
    for (int dim : {0, 5}) {
      if (dim == 5 && name != "rosenbrock") continue;
      auto fn = make_benchmark_function(name, dim);
      ASSERT_FALSE(fn.minimizers.empty()) << name;
      for (const auto& x : fn.minimizers) {
        ASSERT_EQ(x.size(), fn.dim()) << name;
        EXPECT_NEAR(fn(x), fn.optimum, 1e-6) << name;
      }
    }
  }
}

TEST(BenchmarkFunctions, NoPointOfTheBoxBeatsTheOptimum) {
  std::mt19937_64 rng(5);
  for (const auto& name : benchmark_function_names()) {
    auto fn = make_benchmark_function(name, name == "rosenbrock" ? 4 : 0);
    double best = INFINITY;
    for (int i = 0; i < 20000; ++i) best = std::min(best, fn.evaluate(fn.space.sample(rng)));
    EXPECT_GE(best, fn.optimum - 1e-9) << name;
    EXPECT_LT(best, fn.optimum + 50.0) << name;  // sampled values are in a sane range around it
  }
}

TEST(BenchmarkFunctions, KnownValuesAwayFromTheOptimum) {
  auto branin = make_benchmark_function("branin");
  // f(0, 0) = (-6)^2 + 10 (1 - 1/(8 pi)) cos 0 + 10
  EXPECT_NEAR(branin({0.0, 0.0}), 36 + 10 * (1 - 1 / (8 * M_PI)) + 10, 1e-12);
  auto rosen = make_benchmark_function("rosenbrock", 3);
  EXPECT_DOUBLE_EQ(rosen({0.0, 0.0, 0.0}), 2.0);
  // 100 (4 - 2^2)^2 + (1 - 2)^2 + 100 (16 - 4^2)^2 + (1 - 4)^2
  EXPECT_DOUBLE_EQ(rosen({2.0, 4.0, 16.0}), 10.0);
}

TEST(BenchmarkFunctions, UnknownNameOrDimensionIsRefused) {
  EXPECT_THROW(make_benchmark_function("ackley"), ConfigError);
  EXPECT_THROW(make_benchmark_function("branin", 3), ConfigError);
  EXPECT_THROW(make_benchmark_function("rosenbrock", 1), ConfigError);
}

namespace {

StudyOptions fn_study(const BenchmarkFunction& fn, const std::string& pruner = "none",
                      nlohmann::json pruner_params = nlohmann::json::object()) {
  StudyOptions o;
  o.name = fn.name;
  o.space = fn.space;
  o.seed = 2;
  o.heartbeat_interval = 0;
  o.pruner = pruner;
  o.pruner_params = std::move(pruner_params);
  return o;
}

}  // namespace

TEST(FunctionEvaluator, TellsTheFunctionValue) {
  TempDir d;
  auto fn = make_benchmark_function("hartmann6");
  Study s(open_store_in(d), fn_study(fn));
  FunctionEvaluator ev(fn);
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  ASSERT_EQ(t.state, TrialState::Complete);
  EXPECT_DOUBLE_EQ(t.values[0], fn.evaluate(t.config));
  EXPECT_TRUE(t.reports.empty());
}

TEST(FunctionEvaluator, LearningCurveIsReportedAndEndsAtTheFunctionValue) {
  TempDir d;
  auto fn = make_benchmark_function("branin");
  Study s(open_store_in(d), fn_study(fn));
  FunctionEvaluator ev(fn, {.steps = 4, .curve_scale = 8.0});
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  ASSERT_EQ(t.state, TrialState::Complete);
  double y = fn.evaluate(t.config);
  EXPECT_DOUBLE_EQ(t.values[0], y);
  ASSERT_EQ(t.reports.size(), 4u);
  for (int st = 0; st < 4; ++st) EXPECT_DOUBLE_EQ(*t.report_at("value", st), y + 8.0 * (1.0 - (st + 1) / 4.0));
}

TEST(FunctionEvaluator, PrunerStopsTheCurve) {
  TempDir d;
  auto fn = make_benchmark_function("branin");
  // Every report is far above -1, so the threshold pruner prunes at the first step.
  Study s(open_store_in(d), fn_study(fn, "threshold", {{"upper", -1.0}}));
  FunctionEvaluator ev(fn, {.steps = 10});
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  EXPECT_EQ(t.state, TrialState::Pruned);
  EXPECT_EQ(t.fail_reason, "pruned at step 0");
  EXPECT_EQ(t.reports.size(), 1u);
}

TEST(FunctionEvaluator, AFinishedCurveIsNeverPruned) {
  TempDir d;
  auto fn = make_benchmark_function("branin");
  // The same pruner that prunes every report: with one step, that step is the last, so the trial completes with its
  // value instead of losing a finished result at a rung that coincides with its final step.
  Study s(open_store_in(d), fn_study(fn, "threshold", {{"upper", -1.0}}));
  FunctionEvaluator ev(fn, {.steps = 1});
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  ASSERT_EQ(t.state, TrialState::Complete);
  EXPECT_DOUBLE_EQ(t.values[0], fn.evaluate(t.config));
  EXPECT_EQ(t.reports.size(), 1u);
}

TEST(FunctionEvaluator, RandomSearchOnBraninGetsCloseToTheOptimum) {
  TempDir d;
  auto fn = make_benchmark_function("branin");
  Study s(open_store_in(d), fn_study(fn));
  FunctionEvaluator ev(fn);
  RunOptions ro;
  ro.n_trials = 300;
  ro.runs_dir = (d.path / "runs").string();
  auto r = optimize(s, ev, ro);
  EXPECT_EQ(r.completed, 300);
  auto best = s.best_trial();
  ASSERT_TRUE(best);
  EXPECT_LT(best->values[0], fn.optimum + 1.5);
  EXPECT_GE(best->values[0], fn.optimum);
}

TEST(LineSplitter, JoinsChunksAndCutsOverlongLines) {
  std::vector<std::string> lines;
  auto on = [&](const std::string& l) { lines.push_back(l); };
  LineSplitter sp(8);
  sp.feed("loss=1\r\nst", on);
  sp.feed("ep=2\n\n0123456789abc", on);
  sp.finish(on);
  EXPECT_EQ(lines, (std::vector<std::string>{"loss=1", "step=2", "", "01234567", "89abc"}));
}

TEST(Process, ResolveExecutableFindsPathCommandsAndExplainsFailures) {
  EXPECT_THAT(resolve_executable("sh"), HasSubstr("/sh"));
  EXPECT_THROW(resolve_executable("kestrel-surely-missing-cmd"), ConfigError);
  EXPECT_THROW(resolve_executable("/tmp"), ConfigError);
  try {
    resolve_executable("/tmp");
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("is a directory"));
  }
}

TEST(Process, ExitStatusDescribesCodeAndSignal) {
  ChildProcess ok(SpawnOptions{{"/bin/sh", "-c", "exit 7"}, {}, ""});
  EXPECT_EQ(ok.wait().describe(), "exit code 7");
  ChildProcess killed(SpawnOptions{{"/bin/sh", "-c", "kill -KILL $$"}, {}, ""});
  EXPECT_EQ(killed.wait().describe(), "killed by signal 9 (SIGKILL)");
}

TEST(Process, ChildSeesAddedEnvironmentAndWorkingFolder) {
  TempDir d;
  ChildProcess c(SpawnOptions{{"/bin/sh", "-c", "echo \"$KESTREL_X $(pwd)\""}, {{"KESTREL_X", "42"}}, d.path.string()});
  std::string out;
  while (c.pump(1.0, [&](std::string_view s) { out.append(s); }, [](std::string_view) {})) {
  }
  EXPECT_TRUE(c.wait().ok());
  EXPECT_EQ(out, "42 " + fs::canonical(d.path).string() + "\n");
}

TEST(Process, TerminateEndsTheWholeProcessGroup) {
  // The shell's background sleep is in the child's group; it must end with the child.
  ChildProcess c(SpawnOptions{{"/bin/sh", "-c", "sleep 100 & sleep 100"}, {}, ""});
  ASSERT_TRUE(group_alive(c.pid()));
  ExitStatus st = c.terminate(1.0);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(group_gone_eventually(c.pid()));
}
