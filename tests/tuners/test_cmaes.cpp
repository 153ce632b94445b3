// CMA-ES specifics: generations and their attributes, the basis rule that makes replay exact when trials finish
// out of order, extra slots for failures and stragglers, IPOP restarts, and the refusal of categorical parameters.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tests/tuners/tuner_conformance.hpp"
#include "tuners/cmaes.hpp"

namespace kestrel::tuners::testing {
namespace {

SearchSpace box(int d) {
  std::vector<ParamSpec> ps;
  for (int i = 0; i < d; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), -1, 1));
  return SearchSpace(ps);
}

double sphere(const Config& c) {
  double v = 0;
  for (const auto& [k, x] : c) v += (search::as_double(x) - 0.3) * (search::as_double(x) - 0.3);
  return v;
}

TEST(Cmaes, RefusesCategoricalParametersNamingThem) {
  MiniStudy st{SearchSpace({ParamSpec::uniform("x", 0, 1), ParamSpec::categorical("opt", {Value{std::string("a")}})})};
  auto t = make_tuner("cmaes", {}, 1);
  try {
    st.ask(*t);
    FAIL() << "categorical accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'opt'"), std::string::npos) << e.what();
  }
}

TEST(Cmaes, GenerationsHavePopsizeSlotsAndRecordTheirBasis) {
  MiniStudy st(box(3));
  auto t = make_tuner("cmaes", {{"popsize", 5}}, 2);
  for (int i = 0; i < 5; ++i) {
    Trial& tr = st.ask(*t);
    EXPECT_EQ(tr.attrs.at("cma_gen"), "0");
    EXPECT_EQ(tr.attrs.at("cma_index"), std::to_string(i));
    EXPECT_EQ(tr.attrs.count("cma_basis"), 0u);
    st.tell(tr, sphere(tr.config));
  }
  Trial& next = st.ask(*t);
  EXPECT_EQ(next.attrs.at("cma_gen"), "1");
  EXPECT_EQ(next.attrs.at("cma_index"), "0");
  EXPECT_EQ(next.attrs.at("cma_basis"), "0,1,2,3,4");
}

TEST(Cmaes, FailedAndRunningSlotsAreReplacedByExtraSlots) {
  MiniStudy st(box(2));
  auto t = make_tuner("cmaes", {{"popsize", 4}}, 3);
  std::vector<Trial*> g0;
  for (int i = 0; i < 4; ++i) g0.push_back(&st.ask(*t));
  st.fail(*g0[1]);
  st.tell(*g0[2], sphere(g0[2]->config));  // 0 and 3 still running
  Trial& extra = st.ask(*t);
  EXPECT_EQ(extra.attrs.at("cma_gen"), "0");
  EXPECT_EQ(extra.attrs.at("cma_index"), "4");
}

TEST(Cmaes, ALateFinisherDoesNotRewriteAClosedGeneration) {
  // Slot 0 is still running when slots 1..4 complete, so generation 0 closes on {1,2,3,4}. When slot 0 later
  // finishes with the best value of all, the replay must still use the recorded basis: the next proposal is the
  // one it would have been without that late result.
  MiniStudy st(box(3));
  auto t = make_tuner("cmaes", {{"popsize", 4}}, 4);
  std::vector<Trial*> g0;
  for (int i = 0; i < 4; ++i) g0.push_back(&st.ask(*t));
  for (int i = 1; i < 4; ++i) st.tell(*g0[i], 1.0 + sphere(g0[i]->config));
  Trial& extra = st.ask(*t);  // slot 4 replaces the straggler
  st.tell(extra, 1.0 + sphere(extra.config));
  Trial& first_of_g1 = st.ask(*t);
  EXPECT_EQ(first_of_g1.attrs.at("cma_basis"), "1,2,3,4");
  auto before = make_tuner("cmaes", {{"popsize", 4}}, 4)->ask(st.history(), st.next_number());
  st.tell(*g0[0], -100.0);
  auto after = make_tuner("cmaes", {{"popsize", 4}}, 4)->ask(st.history(), st.next_number());
  EXPECT_EQ(st.space().key(before.config), st.space().key(after.config));
  EXPECT_EQ(before.attrs, after.attrs);
}

TEST(Cmaes, RestartsWithALargerPopulationWhenTheRunConverges) {
  // A constant objective gives flat generations: the run stops and IPOP restarts with twice the population.
  MiniStudy st(box(2));
  auto t = make_tuner("cmaes", {{"popsize", 4}}, 5);
  int restart1 = 0;
  for (int i = 0; i < 40; ++i) {
    Trial& tr = st.ask(*t);
    if (tr.attrs.at("cma_restart") == "1") ++restart1;
    st.tell(tr, 1.0);
  }
  EXPECT_GT(restart1, 0);
  // Restart 1 generation 0 has 8 slots (indices 0..7).
  int max_index = -1;
  for (const auto& tr : st.trials())
    if (tr->attrs.at("cma_restart") == "1" && tr->attrs.at("cma_gen") == "0")
      max_index = std::max(max_index, std::stoi(tr->attrs.at("cma_index")));
  EXPECT_EQ(max_index, 7);
  auto off = make_tuner("cmaes", {{"popsize", 4}, {"restarts", false}}, 5);
  MiniStudy st2(box(2));
  for (int i = 0; i < 40; ++i) {
    Trial& tr = st2.ask(*off);
    EXPECT_EQ(tr.attrs.at("cma_restart"), "0");
    st2.tell(tr, 1.0);
  }
}

TEST(Cmaes, ConvergesOnAnIllConditionedEllipsoidInFiveDimensions) {
  // Condition number 1e4: CMA-ES first learns the covariance (~900 evaluations here), then converges linearly.
  MiniStudy st(box(5));
  auto t = make_tuner("cmaes", {}, 6);
  for (int i = 0; i < 1300; ++i) {
    Trial& tr = st.ask(*t);
    double v = 0;
    for (int d = 0; d < 5; ++d) {
      double x = search::as_double(tr.config.at("x" + std::to_string(d))) - 0.2;
      v += std::pow(10.0, d) * x * x;
    }
    st.tell(tr, v);
  }
  EXPECT_LT(*st.best(), 1e-5);  // random search stays above 1e-1 at this budget
}

TEST(Cmaes, IntegerParametersAreRoundedByTheDecoder) {
  MiniStudy st{SearchSpace({ParamSpec::integer("n", 1, 50), ParamSpec::integer("m", 1, 1000, true)})};
  auto t = make_tuner("cmaes", {}, 7);
  for (int i = 0; i < 60; ++i) {
    Trial& tr = st.ask(*t);
    ASSERT_NO_THROW(st.space().check(tr.config));
    ASSERT_TRUE(std::holds_alternative<int64_t>(tr.config.at("n")));
    st.tell(tr, std::abs(search::as_double(tr.config.at("n")) - 17) + std::abs(std::log(search::as_double(tr.config.at("m")) / 40.0)));
  }
  EXPECT_LT(*st.best(), 0.5);
}

TEST(Cmaes, RefusesBadOptions) {
  EXPECT_THROW(make_tuner("cmaes", {{"popsize", 1}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("cmaes", {{"sigma0", 0.0}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("cmaes", {{"inc_popsize", 0.5}}, 1), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners::testing
