// Tests of sweep constraints: parsing, violations stored with each completed trial (Optuna's sign convention),
// the metric lookup order, a missing metric failing the trial, and best/Pareto/target keeping feasible trials only.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/evaluator.hpp"
#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "engine/sweep.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using kestrel::engine::testing::TempDir;
using search::ParamSpec;

TEST(Constraint, ParsesBothOperatorsAndSignsTheViolation) {
  Constraint c = parse_constraint("robust_accuracy@0.1 >= 0.5");
  EXPECT_EQ(c.metric, "robust_accuracy@0.1");
  EXPECT_EQ(c.op, Constraint::Op::AtLeast);
  EXPECT_DOUBLE_EQ(c.bound, 0.5);
  EXPECT_DOUBLE_EQ(c.violation(0.7), 0.5 - 0.7);  // satisfied: negative
  EXPECT_DOUBLE_EQ(c.violation(0.5), 0.0);        // on the bound: feasible
  EXPECT_GT(c.violation(0.4), 0.0);
  Constraint d = parse_constraint("param_count<=1e5");
  EXPECT_EQ(d.op, Constraint::Op::AtMost);
  EXPECT_DOUBLE_EQ(d.violation(2e5), 1e5);
  EXPECT_LT(d.violation(5e4), 0.0);
}

TEST(Constraint, RefusesStrictAndUnknownOperatorsAndBadBounds) {
  EXPECT_THROW(parse_constraint("acc > 0.5"), ConfigError);
  EXPECT_THROW(parse_constraint("acc == 0.5"), ConfigError);
  EXPECT_THROW(parse_constraint("acc >= high"), ConfigError);
  EXPECT_THROW(parse_constraint(">= 0.5"), ConfigError);
  EXPECT_THROW(constraint_from_json({{"metric", "acc"}, {"op", ">="}}), ConfigError);
  Constraint c = constraint_from_json({{"metric", "acc"}, {"op", "<="}, {"bound", 2}});
  EXPECT_EQ(c.text(), "acc <= 2");
}

TEST(Constraint, MetricComesFromObjectivesThenMetricsAttrThenLastReport) {
  search::Trial t;
  t.values = {0.9};
  t.attrs[kAttrMetrics] = R"({"val_accuracy": 0.8, "robust_accuracy@0.1": 0.3})";
  t.reports = {{1, "extra", 5.0}, {2, "extra", 7.0}};
  std::vector<search::Objective> objs = {{"val_accuracy", search::Direction::Maximize}};
  EXPECT_DOUBLE_EQ(*trial_metric(t, objs, "val_accuracy"), 0.9);  // the objective wins
  EXPECT_DOUBLE_EQ(*trial_metric(t, objs, "robust_accuracy@0.1"), 0.3);
  EXPECT_DOUBLE_EQ(*trial_metric(t, objs, "extra"), 7.0);
  EXPECT_FALSE(trial_metric(t, objs, "missing"));
}

namespace {

StudyOptions constrained(const std::string& name, std::vector<search::Objective> objs = {{"value", search::Direction::Maximize}}) {
  StudyOptions o;
  o.name = name;
  o.space = SearchSpace({ParamSpec::uniform("x", 0, 1)});
  o.objectives = std::move(objs);
  o.heartbeat_interval = 0;
  o.constraints = {parse_constraint("robust >= 0.5")};
  return o;
}

void finish_with(Study& s, double value, double robust) {
  auto h = s.ask();
  h.report(1, {{"robust", robust}});
  h.tell(value);
}

}  // namespace

TEST(StudyConstraints, TellStoresViolationsAndBestIsTheBestFeasible) {
  TempDir d;
  Study s(kestrel::engine::testing::open_store_in(d), constrained("c"));
  finish_with(s, 0.95, 0.2);  // best value, infeasible
  finish_with(s, 0.80, 0.6);  // feasible
  finish_with(s, 0.70, 0.9);  // feasible, worse
  auto trials = s.trials();
  ASSERT_EQ(trials.size(), 3u);
  auto v0 = stored_violations(trials[0]);
  ASSERT_TRUE(v0);
  ASSERT_EQ(v0->size(), 1u);
  EXPECT_NEAR((*v0)[0], 0.3, 1e-12);
  EXPECT_FALSE(is_feasible(trials[0]));
  EXPECT_TRUE(is_feasible(trials[1]));
  auto best = s.best_trial();
  ASSERT_TRUE(best);
  EXPECT_EQ(best->number, 1);
}

TEST(StudyConstraints, AConstrainedMetricTheTrialLacksFailsIt) {
  TempDir d;
  Study s(kestrel::engine::testing::open_store_in(d), constrained("c"));
  auto h = s.ask();
  h.tell(0.5);
  auto t = s.trials().at(0);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_NE(t.fail_reason.find("no metric 'robust'"), std::string::npos) << t.fail_reason;
}

TEST(StudyConstraints, ParetoFrontLeavesInfeasibleTrialsOut) {
  TempDir d;
  Study s(kestrel::engine::testing::open_store_in(d), constrained("p", {{"a", search::Direction::Maximize}, {"b", search::Direction::Maximize}}));
  auto tell2 = [&](double a, double b, double robust) {
    auto h = s.ask();
    h.report(1, {{"robust", robust}});
    h.tell({a, b});
  };
  tell2(1.0, 1.0, 0.0);  // dominates everything, infeasible
  tell2(0.9, 0.1, 0.9);
  tell2(0.1, 0.9, 0.9);
  tell2(0.05, 0.05, 0.9);  // dominated
  auto front = s.pareto_front();
  std::set<int64_t> numbers;
  for (const auto& t : front) numbers.insert(t.number);
  EXPECT_EQ(numbers, (std::set<int64_t>{1, 2}));
}

TEST(StudyConstraints, AnInfeasibleTrialDoesNotReachTheTarget) {
  TempDir d;
  Study s(kestrel::engine::testing::open_store_in(d), constrained("t"));
  int calls = 0;
  // The first trial hits the target but violates the constraint; the second is feasible and hits it too.
  CallbackEvaluator ev([&](TrialHandle& h) {
    ++calls;
    h.report(1, {{"robust", calls == 1 ? 0.1 : 0.9}});
    return std::vector<double>{1.0};
  });
  RunOptions ro;
  ro.n_trials = 10;
  ro.target = 1.0;
  ro.runs_dir = (d.path / "runs").string();
  auto sum = optimize(s, ev, ro);
  EXPECT_EQ(sum.stop_reason, "target");
  EXPECT_EQ(sum.completed, 2);
}

TEST(SweepConstraints, StringAndMappingFormsAreParsedAndBadOnesNamedWithTheirLine) {
  SweepSpec s = parse_sweep(
      "study: c\nevaluator: {kind: function, function: branin}\n"
      "constraints:\n  - \"value <= 10\"\n  - {metric: value, op: \">=\", bound: 0.1}\n");
  ASSERT_EQ(s.constraints.size(), 2u);
  EXPECT_EQ(s.constraints[0].op, Constraint::Op::AtMost);
  EXPECT_EQ(s.constraints[1].op, Constraint::Op::AtLeast);
  EXPECT_EQ(s.study_options().constraints.size(), 2u);
  try {
    parse_sweep("study: c\nevaluator: {kind: function, function: branin}\nconstraints:\n  - \"value > 1\"\n", "c.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yaml:4"), std::string::npos) << e.what();
  }
}
