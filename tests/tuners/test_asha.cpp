// Tests of ASHA: promotions of the tuner on hand-made learning curves, the pruner's rung rule (Optuna semantics),
// and the restore/pin bookkeeping both expose.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.hpp"
#include "tuners/asha.hpp"
#include "tuners/multifidelity.hpp"
#include "tests/tuners/test_hyperband_sim.hpp"

namespace kestrel::tuners {
namespace {

using testing::Sim;

// Hand-made curves: three shapes chosen by the integer parameter `curve`.
//   0: fast start, plateaus high (early leader, final loser); 1: slow start, ends lowest; 2: bad throughout.
double curve(int64_t c, double budget) {
  switch (c) {
    case 0: return 0.30 + 0.10 / budget;
    case 1: return 0.05 + 0.60 / budget;
    default: return 0.90;
  }
}

Sim curve_sim() {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::integer("curve", 0, 2), search::ParamSpec::uniform("u", 0, 1)});
  return sim;
}

TEST(AshaTuner, RungBudgetsFollowMinResourceEtaAndEarlyStoppingRate) {
  EXPECT_EQ(asha_rungs(AshaParams{1, 81, 3, 0}), (std::vector<double>{1, 3, 9, 27, 81}));
  EXPECT_EQ(asha_rungs(AshaParams{1, 81, 3, 1}), (std::vector<double>{3, 9, 27, 81}));
  EXPECT_EQ(asha_rungs(AshaParams{2, 50, 2, 0}), (std::vector<double>{2, 4, 8, 16, 32}));
  EXPECT_THROW(asha_rungs(AshaParams{10, 20, 3, 1}), ConfigError);
}

TEST(AshaTuner, PromotesOnlyTheTopThirdOfARungAsSoonAsItExists) {
  Sim sim = curve_sim();
  AshaTuner tuner(AshaParams{1, 9, 3, 0}, 1);
  // Three rung-0 trials with hand-set values (the curve value at budget 1 decides).
  auto& a = sim.ask(tuner);
  auto& b = sim.ask(tuner);
  EXPECT_EQ(a.attrs.at(kAttrRung), "0");
  EXPECT_DOUBLE_EQ(Sim::budget(a), 1.0);
  Sim::complete(a, 0.5);
  Sim::complete(b, 0.2);
  // Two results: floor(2/3) = 0 promotable, so a new configuration starts.
  auto& c = sim.ask(tuner);
  EXPECT_EQ(c.attrs.at(kAttrRung), "0");
  EXPECT_EQ(c.attrs.count(kAttrPromotedFrom), 0u);
  Sim::complete(c, 0.9);
  // Three results: the best (b) goes to rung 1 with budget 3, restoring from b.
  auto& d = sim.ask(tuner);
  EXPECT_EQ(d.attrs.at(kAttrRung), "1");
  EXPECT_EQ(d.attrs.at(kAttrPromotedFrom), std::to_string(b.number));
  EXPECT_EQ(d.attrs.at(kAttrRestoreFrom), std::to_string(b.number));
  EXPECT_DOUBLE_EQ(Sim::budget(d), 3.0);
  EXPECT_EQ(d.config, b.config);
  // b is promoted once only: the next ask starts a new configuration even before d finishes.
  auto& e = sim.ask(tuner);
  EXPECT_EQ(e.attrs.at(kAttrRung), "0");
  // The pin set lists rung-0 results not yet promoted (a, c) and never b.
  auto pins = tuner.may_restore(sim.history());
  EXPECT_EQ(pins, (std::set<int64_t>{a.number, c.number}));
}

TEST(AshaTuner, CrossingCurvesLetTheLateBloomerWinAtTheTopRung) {
  // ASHA ranks by the value at each rung's own budget: at budget 1 curve 0 leads; at budget 9 curve 1 wins.
  Sim sim = curve_sim();
  AshaTuner tuner(AshaParams{1, 9, 3, 0}, 2);
  int promoted_to_top = 0;
  for (int k = 0; k < 60; ++k) {
    auto& t = sim.ask(tuner);
    Sim::complete(t, curve(std::get<int64_t>(t.config.at("curve")), Sim::budget(t)));
    if (t.attrs.at(kAttrRung) == "2") ++promoted_to_top;
  }
  ASSERT_GT(promoted_to_top, 0);
  // The best trial at the top rung is a late bloomer (curve 1), though curve 0 leads at rung 0.
  const search::Trial* best = nullptr;
  for (const auto& t : sim.trials)
    if (t.attrs.at(kAttrRung) == "2" && (!best || t.values[0] < best->values[0])) best = &t;
  ASSERT_NE(best, nullptr);
  EXPECT_EQ(std::get<int64_t>(best->config.at("curve")), 1);
  // Every promotion took a trial from the top floor(n/3) of its rung at the time: a curve-2 config never rises.
  for (const auto& t : sim.trials) {
    if (t.attrs.at(kAttrRung) != "0") {
      EXPECT_NE(std::get<int64_t>(t.config.at("curve")), 2);
    }
  }
}

// Drives ASHA for `n` asks on one parameter u, completing each trial at once with value(u, budget); returns the
// rung of every fresh (not promoted) configuration, in order.
using CurveFn = double (*)(double u, double budget);
std::vector<std::string> fresh_rungs(AshaTuner& tuner, Sim& sim, int n, CurveFn value) {
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) {
    auto& t = sim.ask(tuner);
    const double u = std::get<double>(t.config.at("u"));
    Sim::complete(t, value(u, Sim::budget(t)));
    if (!t.attrs.count(kAttrPromotedFrom)) {
      out.push_back(t.attrs.at(kAttrRung));
      EXPECT_EQ(t.attrs.count(kAttrRestoreFrom), 0u);  // a fresh start never restores
    }
  }
  return out;
}

// Budget 1 ranks in the reverse order of every larger budget.
double reversed(double u, double budget) { return budget <= 1.0 ? u : 1.0 - u; }
// Every budget ranks alike.
double same(double u, double) { return u; }
// Budgets 1 and 3 agree with each other, and rank in the reverse order of budgets 9 and up.
double late_cross(double u, double budget) { return budget <= 3.0 ? u : 1.0 - u; }

TEST(AshaTuner, RankCheckMakesNewConfigurationsSkipARungThatRanksUnlikeTheNext) {
  // Budget 1 ranks the configurations in the reverse order of budget 3 (tau = -1 over the promoted ones), so once
  // 3 pairs (3 promoted configurations) show it, new configurations start at rung 1 (budget 3).
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("u", 0, 1)});
  AshaParams p{1, 27, 3, 0};
  p.min_rank_pairs = 3;
  p.min_rank_agreement = 0.4;
  AshaTuner tuner(p, 5);
  auto rungs = fresh_rungs(tuner, sim, 60, reversed);
  EXPECT_EQ(rungs.front(), "0");
  EXPECT_EQ(rungs.back(), "1");
  EXPECT_EQ(tuner.start_rung(sim.history()), 1u);
  // Every rung-1 start has budget 3 and no parent.
  for (const auto& t : sim.trials)
    if (t.attrs.at(kAttrRung) == "1" && !t.attrs.count(kAttrPromotedFrom)) {
      EXPECT_DOUBLE_EQ(Sim::budget(t), 3.0);
    }
  // A new tuner on the same history (a resumed sweep) decides the same.
  AshaTuner again(p, 5);
  EXPECT_EQ(again.start_rung(sim.history()), 1u);
}

// Fresh-start rungs of 60 asks of ASHA(p) on one parameter u (as fresh_rungs), and its start rung at the end.
std::pair<std::vector<std::string>, size_t> rank_check_run(const AshaParams& p, CurveFn value, int n = 60) {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("u", 0, 1)});
  AshaTuner tuner(p, 5);
  auto rungs = fresh_rungs(tuner, sim, n, value);
  return {rungs, tuner.start_rung(sim.history())};
}

TEST(AshaTuner, RankCheckKeepsRungZeroWhenRungsAgreeOrWhenOff) {
  AshaParams on{1, 27, 3, 0};
  on.min_rank_pairs = 3;
  auto [agreeing, agreeing_start] = rank_check_run(on, same);
  for (const auto& r : agreeing) EXPECT_EQ(r, "0");
  EXPECT_EQ(agreeing_start, 0u);
  // Off (min_rank_pairs 0, the default): reversed rankings change nothing.
  auto [off, off_start] = rank_check_run(AshaParams{1, 27, 3, 0}, reversed);
  for (const auto& r : off) EXPECT_EQ(r, "0");
  EXPECT_EQ(off_start, 0u);
  // Two rungs only: the check never starts configurations at the top rung (that would be full-budget random).
  AshaParams two{1, 3, 3, 0};
  two.min_rank_pairs = 3;
  auto [top, top_start] = rank_check_run(two, reversed);
  for (const auto& r : top) EXPECT_EQ(r, "0");
  EXPECT_EQ(top_start, 0u);
}

TEST(AshaTuner, RankCheckSkipsEveryRungBelowAFailingOneEvenWhenTheyAgreeWithEachOther) {
  // Rungs at 1, 3, 9, 27: rungs 1 and 3 agree, rung 3 ranks unlike rung 9, so new configurations start at 9.
  AshaParams p{1, 27, 3, 0};
  p.min_rank_pairs = 3;
  auto [rungs, start] = rank_check_run(p, late_cross, 150);
  EXPECT_EQ(rungs.front(), "0");
  EXPECT_EQ(rungs.back(), "2");
  EXPECT_EQ(start, 2u);
}

TEST(AshaTuner, RankCheckOptionsAreValidated) {
  EXPECT_NO_THROW(AshaParams::from_json({{"min_rank_pairs", 10}, {"min_rank_agreement", 0.4}}));
  EXPECT_THROW(AshaParams::from_json({{"min_rank_pairs", -1}}), ConfigError);
  EXPECT_THROW(AshaParams::from_json({{"min_rank_agreement", 1.5}}), ConfigError);
  EXPECT_THROW(AshaPrunerParams::from_json({{"min_rank_pairs", 10}}), ConfigError);  // tuner-only option
}

// --- pruner -----------------------------------------------------------------------------------------------------

struct PrunerSim {
  search::SearchSpace space{{search::ParamSpec::uniform("x", 0, 1)}};
  std::deque<search::Trial> trials;
  search::Trial& add() {
    search::Trial t;
    t.number = static_cast<int64_t>(trials.size());
    t.state = search::TrialState::Running;
    t.config = {{"x", 0.5}};
    trials.push_back(t);
    return trials.back();
  }
  History history() const {
    History h;
    h.space = &space;
    h.objectives = {search::Objective{}};
    for (const auto& t : trials) h.trials.push_back(&t);
    return h;
  }
  static void report(search::Trial& t, int64_t step, double v) { t.reports.push_back({step, "value", v}); }
};

TEST(AshaPruner, KeepsTheBestOfFewerThanEtaAndTheTopThirdOtherwise) {
  PrunerSim s;
  AshaPruner p(AshaPrunerParams{1, 3, 0}, "asha");
  auto& a = s.add();
  PrunerSim::report(a, 1, 0.5);
  EXPECT_FALSE(p.should_prune(s.history(), a, 1));  // alone at rung 0: the best so far
  auto& b = s.add();
  PrunerSim::report(b, 1, 0.6);
  EXPECT_TRUE(p.should_prune(s.history(), b, 1));   // two at rung 0: only the best continues
  auto& c = s.add();
  PrunerSim::report(c, 1, 0.4);
  EXPECT_FALSE(p.should_prune(s.history(), c, 1));  // three: top floor(3/3) = 1, and c is it
  auto& d = s.add();
  PrunerSim::report(d, 1, 0.45);
  EXPECT_TRUE(p.should_prune(s.history(), d, 1));   // four: top 1 is c (0.4)
}

TEST(AshaPruner, JudgesEachRungOnceAtTheFirstReportReachingIt) {
  PrunerSim s;
  AshaPruner p(AshaPrunerParams{1, 3, 0}, "asha");
  auto& a = s.add();
  PrunerSim::report(a, 1, 0.1);
  auto& b = s.add();
  PrunerSim::report(b, 1, 0.1);  // ties the best: continues
  EXPECT_FALSE(p.should_prune(s.history(), b, 1));
  // Between rungs (step 2) nothing is judged, however bad the value.
  PrunerSim::report(b, 2, 5.0);
  EXPECT_FALSE(p.should_prune(s.history(), b, 2));
  // Rung 1 (step 3): a reached it with 0.05; b arrives worse and is pruned there.
  PrunerSim::report(a, 3, 0.05);
  PrunerSim::report(b, 3, 0.2);
  EXPECT_TRUE(p.should_prune(s.history(), b, 3));
  // A trial jumping from step 1 to step 9 is judged at rungs 3 and 9 with that report.
  auto& c = s.add();
  PrunerSim::report(c, 1, 0.0);
  PrunerSim::report(c, 9, 0.01);
  EXPECT_FALSE(p.should_prune(s.history(), c, 9));
}

TEST(AshaPruner, MaximizeDirectionAndNanArePrunedCorrectly) {
  PrunerSim s;
  AshaPruner p(AshaPrunerParams{1, 2, 0}, "asha");
  auto& a = s.add();
  PrunerSim::report(a, 1, 0.9);
  auto& b = s.add();
  PrunerSim::report(b, 1, 0.1);
  History h = s.history();
  h.objectives[0].direction = search::Direction::Maximize;
  EXPECT_TRUE(p.should_prune(h, b, 1));
  EXPECT_FALSE(p.should_prune(h, a, 1));
  auto& c = s.add();
  PrunerSim::report(c, 1, std::nan(""));
  EXPECT_TRUE(p.should_prune(s.history(), c, 1));
}

TEST(AshaFactories, KnownKindsBuildAndUnknownKindsFallThrough) {
  EXPECT_NE(make_multifidelity_pruner("asha", {{"min_resource", 2}}), nullptr);
  EXPECT_NE(make_multifidelity_pruner("successive_halving", nlohmann::json::object()), nullptr);
  EXPECT_EQ(make_multifidelity_pruner("median", nlohmann::json::object()), nullptr);
  EXPECT_EQ(make_multifidelity_tuner("random", nlohmann::json::object(), 0), nullptr);
  for (const auto& k : multifidelity_tuner_kinds()) EXPECT_NE(make_multifidelity_tuner(k, nlohmann::json::object(), 0), nullptr) << k;
  EXPECT_THROW(make_multifidelity_tuner("asha", {{"etaa", 3}}, 0), ConfigError);
  EXPECT_THROW(make_multifidelity_pruner("asha", {{"reduction_factor", 1}}), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners
