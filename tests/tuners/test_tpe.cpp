// TPE-specific behaviour: it concentrates where the good trials are (numeric, categorical, conditional parameters),
// uses pruned trials by how far they got, and respects its options.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tests/tuners/tuner_conformance.hpp"
#include "tuners/tpe.hpp"

namespace kestrel::tuners::testing {
namespace {

// Fraction of `n` proposals (asked for trial numbers next..next+n-1 on the same history) satisfying `pred`.
template <class Pred>
double fraction(Tuner& t, const MiniStudy& st, int n, Pred pred) {
  int hits = 0;
  for (int i = 0; i < n; ++i)
    if (pred(t.ask(st.history(), st.next_number() + i).config)) ++hits;
  return hits / static_cast<double>(n);
}

TEST(Tpe, ConcentratesWhereTheBestTrialsAre) {
  for (bool mv : {true, false}) {
    MiniStudy st{SearchSpace({ParamSpec::uniform("x", 0, 1), ParamSpec::uniform("y", 0, 1)})};
    auto rnd = make_tuner("random", {}, 1);
    for (int i = 0; i < 60; ++i) {
      Trial& t = st.ask(*rnd);
      st.tell(t, std::abs(search::as_double(t.config.at("x")) - 0.8));  // y does not matter
    }
    auto tpe = make_tuner("tpe", {{"multivariate", mv}}, 2);
    double near = fraction(*tpe, st, 40, [](const Config& c) { return std::abs(std::get<double>(c.at("x")) - 0.8) < 0.1; });
    EXPECT_GT(near, 0.6) << "multivariate=" << mv;  // a uniform sampler would give 0.2
  }
}

TEST(Tpe, LearnsTheBestCategory) {
  MiniStudy st{SearchSpace({ParamSpec::categorical("c", {Value{std::string("a")}, Value{std::string("b")},
                                                        Value{std::string("c")}, Value{std::string("d")}}),
                            ParamSpec::uniform("x", 0, 1)})};
  auto rnd = make_tuner("random", {}, 3);
  for (int i = 0; i < 50; ++i) {
    Trial& t = st.ask(*rnd);
    bool good = std::get<std::string>(t.config.at("c")) == "c";
    st.tell(t, (good ? 0.0 : 1.0) + 0.1 * std::get<double>(t.config.at("x")));
  }
  auto tpe = make_tuner("tpe", {}, 4);
  double share = fraction(*tpe, st, 40, [](const Config& c) { return std::get<std::string>(c.at("c")) == "c"; });
  EXPECT_GT(share, 0.6);  // uniform: 0.25
}

TEST(Tpe, ModelsConditionalParametersOnlyFromTrialsWhereTheyAreActive) {
  auto momentum = ParamSpec::uniform("momentum", 0, 1);
  momentum.condition = search::Condition{"opt", {Value{std::string("sgd")}}};
  MiniStudy st{SearchSpace({ParamSpec::categorical("opt", {Value{std::string("sgd")}, Value{std::string("adam")}}),
                            momentum})};
  auto rnd = make_tuner("random", {}, 5);
  for (int i = 0; i < 60; ++i) {
    Trial& t = st.ask(*rnd);
    double v = std::get<std::string>(t.config.at("opt")) == "sgd" ? std::abs(std::get<double>(t.config.at("momentum")) - 0.9)
                                                                 : 0.5;
    st.tell(t, v);
  }
  auto tpe = make_tuner("tpe", {}, 6);
  int sgd = 0, good_momentum = 0;
  for (int i = 0; i < 40; ++i) {
    Config c = tpe->ask(st.history(), st.next_number() + i).config;
    ASSERT_NO_THROW(st.space().check(c));
    if (std::get<std::string>(c.at("opt")) == "sgd") {
      ++sgd;
      if (std::abs(std::get<double>(c.at("momentum")) - 0.9) < 0.1) ++good_momentum;
    }
  }
  EXPECT_GT(sgd, 25);
  EXPECT_GT(good_momentum, sgd / 2);
}

TEST(Tpe, RanksPrunedTrialsByHowFarTheyGot) {
  // Only pruned trials: those with x < 0.25 got to step 9, the others were stopped at step 1.
  MiniStudy st{SearchSpace({ParamSpec::uniform("x", 0, 1)})};
  auto rnd = make_tuner("random", {}, 7);
  for (int i = 0; i < 40; ++i) {
    Trial& t = st.ask(*rnd);
    bool far = std::get<double>(t.config.at("x")) < 0.25;
    for (int s = 0; s <= (far ? 9 : 1); ++s) t.reports.push_back({s, "value", 1.0});
    t.state = TrialState::Pruned;
  }
  auto tpe = make_tuner("tpe", {}, 8);
  double low = fraction(*tpe, st, 40, [](const Config& c) { return std::get<double>(c.at("x")) < 0.25; });
  EXPECT_GT(low, 0.6);  // uniform: 0.25
}

TEST(Tpe, UsesTheStartupSamplerUntilEnoughTrialsFinished) {
  // Before n_startup_trials COMPLETE/PRUNED trials, TPE proposes exactly what its start-up sampler would; failed
  // trials do not count.
  MiniStudy st{SearchSpace({ParamSpec::uniform("x", 0, 1)})};
  auto a = make_tuner("tpe", {{"n_startup_trials", 5}}, 9);
  auto b = make_tuner("tpe", {{"n_startup_trials", 50}}, 9);
  for (int i = 0; i < 4; ++i) st.tell(st.ask(*a), 0.5);
  for (int i = 0; i < 6; ++i) st.fail(st.ask(*a));
  EXPECT_EQ(st.space().key(a->ask(st.history(), 10).config), st.space().key(b->ask(st.history(), 10).config));
  st.tell(st.ask(*a), 0.5);
  EXPECT_NE(st.space().key(a->ask(st.history(), 11).config), st.space().key(b->ask(st.history(), 11).config));
}

TEST(Tpe, ConstantLiarMovesProposalsAwayFromRunningTrials) {
  // All good trials sit near x = 0.5; many running trials also sit there. With the liar they count as bad, so
  // fewer proposals land at 0.5 than without it.
  MiniStudy s{SearchSpace({ParamSpec::uniform("x", 0, 1)})};
  auto rnd = make_tuner("random", {}, 10);
  for (int i = 0; i < 40; ++i) {
    Trial& t = s.ask(*rnd);
    s.tell(t, std::abs(std::get<double>(t.config.at("x")) - 0.5));
  }
  auto liar = make_tuner("tpe", {{"constant_liar", true}}, 11);
  auto honest = make_tuner("tpe", {{"constant_liar", false}}, 11);
  for (int i = 0; i < 15; ++i) s.ask(*honest);  // 15 running trials, proposed near 0.5 by the honest tuner
  auto near = [](const Config& c) { return std::abs(std::get<double>(c.at("x")) - 0.5) < 0.05; };
  double with = fraction(*liar, s, 40, near), without = fraction(*honest, s, 40, near);
  EXPECT_LT(with, without);
}

// A log-scale int has cells of very unequal width on the unit scale (value 1 covers [0.5, 1.5], value 900 a
// sliver); TPE scores a candidate by the kernel mass of its cell, as Optuna does, and proposes valid values only.
TEST(Tpe, LogScaleIntsUseTheirCellsAndFindSmallOptima) {
  MiniStudy st{SearchSpace({ParamSpec::integer("units", 1, 1000, true), ParamSpec::uniform("x", 0, 1)})};
  auto rnd = make_tuner("random", {}, 8);
  auto loss = [](const Config& c) {
    return std::fabs(std::log(static_cast<double>(std::get<int64_t>(c.at("units")))) - std::log(3.0)) +
           0.1 * std::get<double>(c.at("x"));
  };
  for (int i = 0; i < 40; ++i) {
    Trial& t = st.ask(*rnd);
    st.tell(t, loss(t.config));
  }
  auto tpe = make_tuner("tpe", {}, 9);
  int near = 0;
  for (int i = 0; i < 40; ++i) {
    Config c = tpe->ask(st.history(), st.next_number() + i).config;
    ASSERT_NO_THROW(st.space().check(c));
    int64_t u = std::get<int64_t>(c.at("units"));
    if (u >= 2 && u <= 5) ++near;
  }
  EXPECT_GT(near, 20);  // uniform on the log scale: about 17% of draws fall in 2..5
}

TEST(Tpe, RefusesBadOptions) {
  EXPECT_THROW(make_tuner("tpe", {{"gamma", 0.0}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("tpe", {{"n_ei_candidates", 0}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("tpe", {{"startup", "grid"}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("tpe", {{"bandwidth", "wide"}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("tpe", {{"prior_weight", -1.0}}, 1), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners::testing
