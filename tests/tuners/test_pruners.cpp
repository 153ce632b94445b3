// Tests of the basic pruners against Optuna's documented semantics (median/percentile, patience, threshold),
// with hand-built histories whose right answer can be worked out by hand.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tests/tuners/tuner_conformance.hpp"

namespace kestrel::tuners::testing {
namespace {

// A study of finished trials, each with reports value(step) for steps 0..n-1.
struct PrunerStudy {
  SearchSpace space{SearchSpace({ParamSpec::uniform("x", 0, 1)})};
  search::Direction dir = search::Direction::Minimize;
  std::deque<Trial> trials;

  Trial& add(TrialState s, std::vector<double> curve) {
    Trial t;
    t.number = static_cast<int64_t>(trials.size());
    t.state = s;
    t.config = {{"x", 0.5}};
    for (size_t i = 0; i < curve.size(); ++i) t.reports.push_back({static_cast<int64_t>(i), "value", curve[i]});
    if (s == TrialState::Complete) t.values = {curve.empty() ? 0.0 : curve.back()};
    trials.push_back(t);
    return trials.back();
  }
  History history() const {
    History h;
    h.space = &space;
    h.objectives = {search::Objective{"value", dir}};
    for (const auto& t : trials) h.trials.push_back(&t);
    return h;
  }
};

TEST(MedianPruner, PrunesATrialWorseThanTheMedianAtTheSameStep) {
  PrunerStudy s;
  for (double base : {1.0, 2.0, 3.0, 4.0, 5.0}) s.add(TrialState::Complete, {base, base - 0.5});
  auto p = make_pruner("median", {});
  Trial& bad = s.add(TrialState::Running, {3.5});   // median at step 0 is 3.0
  EXPECT_TRUE(p->should_prune(s.history(), bad, 0));
  Trial& good = s.add(TrialState::Running, {2.5});
  EXPECT_FALSE(p->should_prune(s.history(), good, 0));
}

TEST(MedianPruner, UsesTheBestReportSoFarNotTheLatest) {
  PrunerStudy s;
  for (double base : {1.0, 2.0, 3.0, 4.0, 5.0}) s.add(TrialState::Complete, {base, base});
  auto p = make_pruner("median", {});
  Trial& t = s.add(TrialState::Running, {2.0, 9.0});  // best 2.0 < median 3.0 at step 1
  EXPECT_FALSE(p->should_prune(s.history(), t, 1));
}

TEST(MedianPruner, WaitsForStartupTrialsAndWarmupSteps) {
  PrunerStudy s;
  for (double base : {1.0, 2.0, 3.0}) s.add(TrialState::Complete, {base, base, base});
  Trial& t = s.add(TrialState::Running, {10.0, 10.0, 10.0});
  EXPECT_FALSE(make_pruner("median", {})->should_prune(s.history(), t, 2));  // 3 < 5 startup trials
  EXPECT_TRUE(make_pruner("median", {{"n_startup_trials", 3}})->should_prune(s.history(), t, 2));
  auto warm = make_pruner("median", {{"n_startup_trials", 3}, {"n_warmup_steps", 3}});
  EXPECT_FALSE(warm->should_prune(s.history(), t, 2));
}

TEST(MedianPruner, ChecksOnlyAtTheFirstReportOfEachInterval) {
  PrunerStudy s;
  for (double base : {1.0, 2.0, 3.0}) s.add(TrialState::Complete, {base, base, base, base, base});
  auto p = make_pruner("median", {{"n_startup_trials", 1}, {"interval_steps", 2}});
  Trial& t = s.add(TrialState::Running, {10.0, 10.0, 10.0, 10.0});
  EXPECT_TRUE(p->should_prune(s.history(), t, 0));
  EXPECT_FALSE(p->should_prune(s.history(), t, 1));  // step 1 is inside interval [0, 2)
  EXPECT_TRUE(p->should_prune(s.history(), t, 2));
  EXPECT_FALSE(p->should_prune(s.history(), t, 3));
}

TEST(MedianPruner, RespectsMaximizeAndPrunesNaN) {
  PrunerStudy s;
  s.dir = search::Direction::Maximize;
  for (double base : {1.0, 2.0, 3.0, 4.0, 5.0}) s.add(TrialState::Complete, {base});
  auto p = make_pruner("median", {});
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {2.5}), 0));
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {3.5}), 0));
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {std::nan("")}), 0));
}

TEST(MedianPruner, IgnoresPrunedAndFailedTrialsInTheReference) {
  PrunerStudy s;
  for (int i = 0; i < 5; ++i) s.add(TrialState::Pruned, {100.0});
  for (double base : {1.0, 2.0, 3.0, 4.0, 5.0}) s.add(TrialState::Complete, {base});
  EXPECT_FALSE(make_pruner("median", {})->should_prune(s.history(), s.add(TrialState::Running, {2.9}), 0));
}

TEST(PercentilePruner, InterpolatesLikeNumpy) {
  PrunerStudy s;
  for (double base : {1.0, 2.0, 3.0, 4.0, 5.0}) s.add(TrialState::Complete, {base});
  // 25th percentile of 1..5 is 2.0 (linear interpolation).
  auto p = make_pruner("percentile", {{"percentile", 25.0}});
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {2.1}), 0));
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {1.9}), 0));
  EXPECT_THROW(make_pruner("percentile", {{"percentile", 120.0}}), ConfigError);
  EXPECT_THROW(make_pruner("median", {{"percentile", 20.0}}), ConfigError);  // median fixes the percentile
}

TEST(PatiencePruner, PrunesAfterPatienceReportsWithoutImprovement) {
  PrunerStudy s;
  auto p = make_pruner("patience", {{"patience", 2}});
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {5, 4, 4.5, 4.2}), 3));  // 4 reports, need > 3
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {5, 4, 4.5, 4.2, 4.1}), 4));
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {5, 4, 4.5, 4.2, 3.9}), 4));
  // Optuna's min_delta is a tolerance: the recent best may be worse than the earlier best by up to min_delta.
  auto delta = make_pruner("patience", {{"patience", 2}, {"min_delta", 0.5}});
  EXPECT_FALSE(delta->should_prune(s.history(), s.add(TrialState::Running, {5, 4, 4.5, 4.2, 4.4}), 4));
  EXPECT_TRUE(delta->should_prune(s.history(), s.add(TrialState::Running, {5, 4, 4.6, 4.7, 4.8}), 4));
  EXPECT_THROW(make_pruner("patience", {}), ConfigError);  // patience is required
}

TEST(ThresholdPruner, PrunesOutsideTheBoundsAndOnNaN) {
  PrunerStudy s;
  auto p = make_pruner("threshold", {{"upper", 1.0}});
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {0.5, 1.5}), 1));
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {1.5, 0.5}), 1));
  EXPECT_TRUE(p->should_prune(s.history(), s.add(TrialState::Running, {std::nan("")}), 0));
  auto lo = make_pruner("threshold", {{"lower", 0.2}, {"n_warmup_steps", 2}});
  EXPECT_FALSE(lo->should_prune(s.history(), s.add(TrialState::Running, {0.1, 0.1}), 1));
  EXPECT_TRUE(lo->should_prune(s.history(), s.add(TrialState::Running, {0.1, 0.1, 0.1}), 2));
  EXPECT_THROW(make_pruner("threshold", {}), ConfigError);
  EXPECT_THROW(make_pruner("threshold", {{"lower", 2.0}, {"upper", 1.0}}), ConfigError);
}

TEST(NonePruner, NeverPrunesAndTakesNoOptions) {
  PrunerStudy s;
  auto p = make_pruner("none", {});
  EXPECT_FALSE(p->should_prune(s.history(), s.add(TrialState::Running, {std::nan("")}), 0));
  EXPECT_THROW(make_pruner("none", {{"x", 1}}), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners::testing
