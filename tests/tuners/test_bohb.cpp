// Tests of BOHB: its density-ratio model concentrates new configurations where the results of the largest
// well-observed, rank-validated budget are good, and falls back to Hyperband's uniform sampling otherwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "tuners/bohb.hpp"
#include "tests/tuners/test_hyperband_sim.hpp"

namespace kestrel::tuners {
namespace {

using testing::Sim;

// Median distance to 0.2 of `n` new rung-0 proposals after `history` hand-made results at the full budget 81.
double median_distance(int history, int n, double random_fraction) {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  for (int k = 0; k < history; ++k) {
    const double x = (k + 0.5) / history;
    auto& t = sim.add({{"x", x}}, {{"budget", "81"}});  // no bracket attrs: outside Hyperband's schedule
    Sim::complete(t, (x - 0.2) * (x - 0.2));
  }
  BohbTuner tuner(BohbParams::from_json({{"max_resource", 81}, {"random_fraction", random_fraction}}), 4);
  std::vector<double> d;
  for (int k = 0; k < n; ++k) {
    auto& t = sim.ask(tuner);
    EXPECT_EQ(t.attrs.at("rung"), "0");
    d.push_back(std::abs(search::as_double(t.config.at("x")) - 0.2));
  }
  std::sort(d.begin(), d.end());
  return d[d.size() / 2];
}

TEST(BohbTuner, ModelConcentratesProposalsNearTheGoodResults) {
  // Uniform proposals have a median distance of about 0.3 from 0.2; the model's stay near it.
  EXPECT_LT(median_distance(30, 40, 0.0), 0.08);
}

TEST(BohbTuner, TooFewResultsMeanUniformProposals) {
  // 2 results < min_points_in_model (d + 1 = 2) + 2: no model, so proposals spread over [0, 1].
  EXPECT_GT(median_distance(2, 40, 0.0), 0.15);
}

TEST(RankAgreement, CountsConcordantAndDiscordantPairs) {
  EXPECT_DOUBLE_EQ(rank_agreement({1, 2, 3, 4}, {10, 20, 30, 40}).tau, 1.0);
  EXPECT_DOUBLE_EQ(rank_agreement({1, 2, 3, 4}, {40, 30, 20, 10}).tau, -1.0);
  // Pairs (0,1) (0,2) (1,2): concordant, concordant, discordant.
  const RankAgreement r = rank_agreement({1, 2, 3}, {1, 3, 2});
  EXPECT_EQ(r.pairs, 3);
  EXPECT_NEAR(r.tau, 1.0 / 3.0, 1e-12);
  // A pair tied in either ranking is not counted.
  EXPECT_EQ(rank_agreement({1, 1, 2}, {5, 6, 7}).pairs, 2);
  EXPECT_EQ(rank_agreement({}, {}).pairs, 0);
  EXPECT_THROW(rank_agreement({1, 2}, {1}), Error);
}

// 30 results at budget 9 that favour x near 0.2, and the `top` best of them (the ones successive halving would
// promote) also run at the full budget 81, where their ranking agrees with budget 9's (agree) or is reversed. With
// min_points_in_model 6, budget 81 (at most 5 results) is too small for a model of its own.
Sim crossing_history(int top, bool agree) {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  std::vector<double> xs;
  for (int k = 0; k < 30; ++k) {
    const double x = (k + 0.5) / 30;
    xs.push_back(x);
    Sim::complete(sim.add({{"x", x}}, {{"budget", "9"}}), (x - 0.2) * (x - 0.2));
  }
  std::sort(xs.begin(), xs.end(), [](double a, double b) { return std::abs(a - 0.2) < std::abs(b - 0.2); });
  for (int k = 0; k < top; ++k) {
    const double l = (xs[k] - 0.2) * (xs[k] - 0.2);
    Sim::complete(sim.add({{"x", xs[k]}}, {{"budget", "81"}}), agree ? l : 1.0 - l);
  }
  return sim;
}

// Median distance to 0.2 of `n` new rung-0 proposals of BOHB on `sim` (extra options in `params`).
double median_distance(Sim& sim, int n, nlohmann::json params) {
  params["max_resource"] = 81;
  params["random_fraction"] = 0.0;
  params["min_points_in_model"] = 6;
  BohbTuner tuner(BohbParams::from_json(params), 4);
  std::vector<double> d;
  for (int k = 0; k < n; ++k) d.push_back(std::abs(search::as_double(sim.ask(tuner).config.at("x")) - 0.2));
  std::sort(d.begin(), d.end());
  return d[d.size() / 2];
}

TEST(BohbTuner, LowBudgetRankedOppositeToTheFullBudgetIsIgnored) {
  // Uniform proposals have a median distance of about 0.3 from 0.2; a model of budget 9 would keep them near it.
  Sim sim = crossing_history(5, /*agree=*/false);
  EXPECT_GT(median_distance(sim, 40, {}), 0.2);
}

TEST(BohbTuner, LowBudgetRankedLikeTheFullBudgetIsModelled) {
  Sim sim = crossing_history(5, /*agree=*/true);
  EXPECT_LT(median_distance(sim, 40, {}), 0.1);
}

TEST(BohbTuner, TooFewConfigurationsAtTheFullBudgetLeaveALowBudgetUnvalidated) {
  // 4 configurations at both budgets give 6 pairs < min_rank_pairs 10, even though they agree perfectly.
  Sim sim = crossing_history(4, /*agree=*/true);
  EXPECT_GT(median_distance(sim, 40, {}), 0.2);
  // The same history with the check relaxed to 6 pairs uses budget 9.
  Sim relaxed = crossing_history(4, /*agree=*/true);
  EXPECT_LT(median_distance(relaxed, 40, {{"min_rank_pairs", 6}}), 0.1);
}

TEST(BohbTuner, OriginalRuleTrustsEveryBudget) {
  // min_rank_pairs 0 and min_rank_agreement -1: budget 9 is modelled although the full budget reverses it.
  Sim sim = crossing_history(5, /*agree=*/false);
  EXPECT_LT(median_distance(sim, 40, {{"min_rank_pairs", 0}, {"min_rank_agreement", -1.0}}), 0.1);
}

TEST(BohbTuner, WithoutAValidatedBudgetProposesExactlyWhatHyperbandProposes) {
  Sim a = crossing_history(5, /*agree=*/false), b = crossing_history(5, /*agree=*/false);
  const nlohmann::json params = {{"max_resource", 81}, {"random_fraction", 0.0}, {"min_points_in_model", 6}};
  BohbTuner bohb(BohbParams::from_json(params), 11);
  HyperbandTuner hyperband(HyperbandParams{1.0, 81.0, 3, 0}, 11);
  for (int k = 0; k < 20; ++k) EXPECT_EQ(a.ask(bohb).config, b.ask(hyperband).config) << "proposal " << k;
}

TEST(BohbParams, RankValidationOptionsAreReadAndChecked) {
  const BohbParams p = BohbParams::from_json({{"min_rank_pairs", 3}, {"min_rank_agreement", 0.2}});
  EXPECT_EQ(p.min_rank_pairs, 3);
  EXPECT_DOUBLE_EQ(p.min_rank_agreement, 0.2);
  EXPECT_EQ(BohbParams{}.min_rank_pairs, 10);
  EXPECT_THROW(BohbParams::from_json({{"min_rank_pairs", -1}}), ConfigError);
  EXPECT_THROW(BohbParams::from_json({{"min_rank_agreement", 1.5}}), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners
