// Tests of Hyperband: the bracket table of Li et al. (R = 81, eta = 3), synchronous promotions inside brackets,
// parallel workers opening new brackets, and resume in the middle of a bracket repeating the same decisions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.hpp"
#include "tuners/hyperband.hpp"
#include "tuners/multifidelity.hpp"
#include "tests/tuners/test_hyperband_sim.hpp"

namespace kestrel::tuners {
namespace {

using testing::Sim;

search::SearchSpace unit_space() { return search::SearchSpace({search::ParamSpec::uniform("x", 0.0, 1.0)}); }

double objective(const search::Trial& t) {
  const double x = search::as_double(t.config.at("x"));
  const double b = Sim::budget(t);
  return (x - 0.3) * (x - 0.3) * (1.0 + 1.0 / b) + 0.01 / b;
}

TEST(HyperbandBrackets, EqualLiEtAlTableForR81Eta3) {
  // Li et al. (JMLR 2018), Table 1: rows i, columns s = 4..0, entries (n_i, r_i).
  const std::vector<std::vector<std::pair<int64_t, double>>> paper = {
      {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},
      {{34, 3}, {11, 9}, {3, 27}, {1, 81}},
      {{15, 9}, {5, 27}, {1, 81}},
      {{8, 27}, {2, 81}},
      {{5, 81}},
  };
  auto b = hyperband_brackets(1, 81, 3);
  ASSERT_EQ(b.size(), paper.size());
  for (size_t k = 0; k < paper.size(); ++k) {
    EXPECT_EQ(b[k].s, static_cast<int64_t>(4 - k));
    ASSERT_EQ(b[k].rungs.size(), paper[k].size()) << "bracket s=" << b[k].s;
    for (size_t i = 0; i < paper[k].size(); ++i) {
      EXPECT_EQ(b[k].rungs[i].n, paper[k][i].first) << "s=" << b[k].s << " i=" << i;
      EXPECT_DOUBLE_EQ(b[k].rungs[i].budget, paper[k][i].second) << "s=" << b[k].s << " i=" << i;
    }
  }
}

TEST(HyperbandBrackets, ScaleWithMinResourceAndHandleRatiosOffThePowerGrid) {
  auto scaled = hyperband_brackets(2, 162, 3);
  auto base = hyperband_brackets(1, 81, 3);
  ASSERT_EQ(scaled.size(), base.size());
  for (size_t k = 0; k < base.size(); ++k)
    for (size_t i = 0; i < base[k].rungs.size(); ++i) {
      EXPECT_EQ(scaled[k].rungs[i].n, base[k].rungs[i].n);
      EXPECT_DOUBLE_EQ(scaled[k].rungs[i].budget, 2 * base[k].rungs[i].budget);
    }
  // R = 100: s_max = floor(log3 100) = 4, top rung always at max_resource.
  auto odd = hyperband_brackets(1, 100, 3);
  EXPECT_EQ(odd.front().s, 4);
  EXPECT_DOUBLE_EQ(odd.front().rungs.back().budget, 100);
  EXPECT_DOUBLE_EQ(odd.front().rungs.front().budget, 100.0 / 81.0);
  EXPECT_THROW(hyperband_brackets(0, 10, 3), ConfigError);
  EXPECT_THROW(hyperband_brackets(1, 10, 1), ConfigError);
}

TEST(HyperbandTuner, OneIterationFillsEveryRungWithTheBestOfThePreviousOne) {
  Sim sim;
  sim.space = unit_space();
  HyperbandTuner tuner(HyperbandParams::from_json({{"iterations", 1}}), 7);
  for (;;) {
    try {
      auto& t = sim.ask(tuner);
      Sim::complete(t, objective(t));
    } catch (const SpaceExhausted&) {
      break;
    }
  }
  EXPECT_EQ(sim.trials.size(), 206u);  // sum of n_i over the table
  std::map<std::pair<int64_t, int64_t>, std::vector<const search::Trial*>> cells;
  for (const auto& t : sim.trials) {
    auto pos = rung_position(t);
    ASSERT_TRUE(pos);
    cells[{pos->bracket, pos->rung}].push_back(&t);
  }
  const auto& brackets = tuner.brackets();
  for (size_t b = 0; b < brackets.size(); ++b)
    for (size_t i = 0; i < brackets[b].rungs.size(); ++i) {
      const auto& members = cells[{static_cast<int64_t>(b), static_cast<int64_t>(i)}];
      ASSERT_EQ(static_cast<int64_t>(members.size()), brackets[b].rungs[i].n) << "bracket " << b << " rung " << i;
      for (const auto* t : members) EXPECT_DOUBLE_EQ(Sim::budget(*t), brackets[b].rungs[i].budget);
      if (i == 0) continue;
      // The parents of rung i are exactly the best n_i of rung i-1, and each child restores from its parent.
      auto below = cells[{static_cast<int64_t>(b), static_cast<int64_t>(i - 1)}];
      std::sort(below.begin(), below.end(), [](auto* a, auto* c) { return a->values[0] < c->values[0]; });
      std::set<int64_t> expected, parents;
      for (int64_t k = 0; k < brackets[b].rungs[i].n; ++k) expected.insert(below[static_cast<size_t>(k)]->number);
      for (const auto* t : members) {
        int64_t parent = std::stoll(t->attrs.at(kAttrPromotedFrom));
        EXPECT_EQ(t->attrs.at(kAttrRestoreFrom), t->attrs.at(kAttrPromotedFrom));
        EXPECT_TRUE(search::values_equal(t->config.at("x"), sim.trials[static_cast<size_t>(parent)].config.at("x")));
        parents.insert(parent);
      }
      EXPECT_EQ(parents, expected) << "bracket " << b << " rung " << i;
    }
}

// Runs `n_asks` proposals with up to `in_flight` trials running, finishing the oldest first; every trial whose
// number is in `fail` fails instead. When `restart_every` > 0, the tuner is rebuilt from scratch every that many
// asks (a resumed process: only the history survives). `extra` adds tuner options. Returns what was proposed, as text.
std::vector<std::string> drive(const std::string& kind, int n_asks, int in_flight, int restart_every,
                               const std::set<int64_t>& fail = {},
                               const nlohmann::json& extra = nlohmann::json::object()) {
  Sim sim;
  sim.space = unit_space();
  nlohmann::json params = {{"min_resource", 1}, {"max_resource", 27}, {"eta", 3}};
  params.update(extra);
  auto tuner = make_multifidelity_tuner(kind, params, 11);
  std::vector<std::string> out;
  std::deque<search::Trial*> running;
  for (int k = 0; k < n_asks; ++k) {
    if (restart_every > 0 && k % restart_every == restart_every - 1) tuner = make_multifidelity_tuner(kind, params, 11);
    while (static_cast<int>(running.size()) >= in_flight) {
      auto* t = running.front();
      running.pop_front();
      if (fail.count(t->number))
        Sim::fail(*t);
      else
        Sim::complete(*t, objective(*t));
    }
    // Whatever the proposal restores from must have been announced as pinned just before (checkpoint retention).
    auto pins = dynamic_cast<const CheckpointUser&>(*tuner).may_restore(sim.history());
    auto& t = sim.ask(*tuner);
    if (auto it = t.attrs.find(kAttrRestoreFrom); it != t.attrs.end()) {
      EXPECT_TRUE(pins.count(std::stoll(it->second))) << kind << ": trial " << t.number << " restores from " << it->second;
    }
    std::string s = search::config_to_json(t.config).dump();
    for (const auto& [key, v] : t.attrs) s += " " + key + "=" + v;
    out.push_back(s);
    running.push_back(&t);
  }
  return out;
}

TEST(HyperbandTuner, ResumeMidBracketRepeatsTheUninterruptedDecisionsAndPinsWhatItRestores) {
  for (const char* kind : {"hyperband", "bohb", "asha"}) {
    auto straight = drive(kind, 120, 3, 0, {5, 40});
    auto resumed = drive(kind, 120, 3, 7, {5, 40});
    EXPECT_EQ(straight, resumed) << kind;
    // The run did promote (so the comparison covers promotion decisions, not only fresh samples).
    EXPECT_TRUE(std::any_of(straight.begin(), straight.end(),
                            [](const std::string& s) { return s.find("promoted_from=") != std::string::npos; }))
        << kind;
  }
}

// Index of the first proposal where two runs differ (their common length when they never do).
size_t first_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

TEST(BohbTuner, ResumeWithARankValidatedLowBudgetRepeatsTheUninterruptedDecisions) {
  // The objective ranks alike at every budget, so with min_rank_pairs 1 budget 9 is validated by the first two
  // configurations that reach 27 and modelled before budget 27 has enough results of its own.
  const nlohmann::json early = {{"min_rank_pairs", 1}, {"random_fraction", 0.0}};
  auto straight = drive("bohb", 120, 3, 0, {}, early);
  EXPECT_EQ(straight, drive("bohb", 120, 3, 7, {}, early));
  // Hyperband's proposals are BOHB's until a budget qualifies: the validated budget 9 makes them part earlier than
  // under the default rule, where only budget 27's own model can.
  const auto hyperband = drive("hyperband", 120, 3, 0);
  const auto late = drive("bohb", 120, 3, 0, {}, {{"random_fraction", 0.0}});
  EXPECT_LT(first_difference(straight, hyperband), first_difference(late, hyperband));
  EXPECT_LT(first_difference(late, hyperband), late.size());
}

TEST(HyperbandTuner, ParallelWorkersOpenTheNextBracketInsteadOfWaiting) {
  Sim sim;
  sim.space = unit_space();
  HyperbandTuner tuner(HyperbandParams{}, 3);
  for (int k = 0; k < 81; ++k) EXPECT_EQ(sim.ask(tuner).attrs.at(kAttrBracket), "0");
  auto& next = sim.ask(tuner);  // bracket 0's rung 0 is full and running: bracket 1 (s = 3) starts
  EXPECT_EQ(next.attrs.at(kAttrBracket), "1");
  EXPECT_EQ(next.attrs.at(kAttrRung), "0");
  EXPECT_DOUBLE_EQ(Sim::budget(next), 3.0);
}

TEST(HyperbandTuner, FailedTrialsAreNeverPromotedAndWaitIsNotReady) {
  Sim sim;
  sim.space = unit_space();
  HyperbandTuner tuner(HyperbandParams::from_json({{"max_resource", 9}, {"iterations", 1}}), 5);
  // Brackets for R = 9: s=2 (9 at 1, 3 at 3, 1 at 9), s=1 (5 at 3, 1 at 9), s=0 (3 at 9).
  std::vector<search::Trial*> rung0;
  for (int k = 0; k < 9; ++k) rung0.push_back(&sim.ask(tuner));
  for (int k = 0; k < 9; ++k) {
    if (k < 7)
      Sim::fail(*rung0[static_cast<size_t>(k)]);
    else
      Sim::complete(*rung0[static_cast<size_t>(k)], 1.0 - k * 0.1);
  }
  // Only two successful trials: rung 1 of bracket 0 gets just those two.
  auto& a = sim.ask(tuner);
  auto& b = sim.ask(tuner);
  EXPECT_EQ(a.attrs.at(kAttrPromotedFrom), "8");
  EXPECT_EQ(b.attrs.at(kAttrPromotedFrom), "7");
  auto& c = sim.ask(tuner);
  EXPECT_EQ(c.attrs.at(kAttrBracket), "1");  // bracket 0 waits on a and b
  for (int k = 0; k < 7; ++k) sim.ask(tuner);  // rest of bracket 1's rung 0 (5) and bracket 2 (3)
  EXPECT_THROW(sim.ask(tuner), NotReady);
}

}  // namespace
}  // namespace kestrel::tuners
