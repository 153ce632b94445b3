// Tests of random, grid and Sobol search, derive_seed and the factories (kinds, options, errors).
// Properties, not snapshots: stratification of Sobol points, exhaustion of finite spaces, no duplicates.
#include <gtest/gtest.h>

#include <set>

#include "common/error.hpp"
#include "tests/tuners/tuner_conformance.hpp"
#include "tuners/sobol.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners::testing {
namespace {

SearchSpace small_conditional_space() {
  // opt in {sgd, adam}; momentum (3 values) only for sgd; layers 1..3 -> (3 + 1) * 3 = 12 configurations.
  auto momentum = ParamSpec::uniform("momentum", 0.0, 0.9);
  momentum.step = 0.45;
  momentum.condition = search::Condition{"opt", {Value{std::string("sgd")}}};
  return SearchSpace({ParamSpec::categorical("opt", {Value{std::string("sgd")}, Value{std::string("adam")}}),
                      momentum, ParamSpec::integer("layers", 1, 3)});
}

TEST(Sobol, FirstPointsMatchThePublishedSequence) {
  // The first points of the 3-D Joe-Kuo sequence as printed with the direction-number file.
  const double expected[10][3] = {{0, 0, 0},         {0.5, 0.5, 0.5},       {0.75, 0.25, 0.25},    {0.25, 0.75, 0.75},
                                  {0.375, 0.375, 0.625}, {0.875, 0.875, 0.125}, {0.625, 0.125, 0.875}, {0.125, 0.625, 0.375},
                                  {0.1875, 0.3125, 0.9375}, {0.6875, 0.8125, 0.4375}};
  for (uint64_t i = 0; i < 10; ++i) {
    auto u = sobol_point(i, 3);
    for (int j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(u[j], expected[i][j]) << "point " << i << " dim " << j;
  }
}

TEST(Sobol, EveryDimensionIsStratifiedAtPowersOfTwo) {
  // A Sobol' sequence is a (0,1)-sequence in each coordinate: the first 2^k points put exactly one point in each
  // interval [i/2^k, (i+1)/2^k). Linear matrix scrambling and a digital shift preserve that: check all three.
  std::vector<uint32_t> shift(kSobolMaxDims);
  Rng rng(42);
  for (auto& s : shift) s = static_cast<uint32_t>(rng.bits());
  const SobolDirections plain = sobol_directions(kSobolMaxDims), scrambled = scramble_directions(plain, 7);
  ASSERT_NE(plain, scrambled);
  struct Variant {
    const SobolDirections* dirs;
    const std::vector<uint32_t>* shift;
  };
  for (const Variant& v : {Variant{&plain, nullptr}, Variant{&plain, &shift}, Variant{&scrambled, &shift}}) {
    for (int k : {4, 8}) {
      size_t n = size_t{1} << k;
      std::vector<std::vector<int>> counts(kSobolMaxDims, std::vector<int>(n, 0));
      for (uint64_t i = 0; i < n; ++i) {
        auto u = sobol_point(i, *v.dirs, v.shift);
        for (size_t j = 0; j < kSobolMaxDims; ++j) counts[j][static_cast<size_t>(u[j] * static_cast<double>(n))]++;
      }
      for (size_t j = 0; j < kSobolMaxDims; ++j)
        for (size_t c = 0; c < n; ++c) ASSERT_EQ(counts[j][c], 1) << "dim " << j << " k " << k << " cell " << c;
    }
  }
}

TEST(Sobol, PairsOfDimensionsAreBetterSpreadThanRandom) {
  // Over 256 points and an 8x8 grid, every 2-D projection of the first 8 dimensions should fill nearly all cells
  // evenly; uniform random points leave a chi-square of about 63. Joe-Kuo numbers give far less.
  for (size_t a = 0; a < 8; ++a)
    for (size_t b = a + 1; b < 8; ++b) {
      std::vector<int> cells(64, 0);
      for (uint64_t i = 0; i < 256; ++i) {
        auto u = sobol_point(i, 8);
        cells[static_cast<size_t>(u[a] * 8) * 8 + static_cast<size_t>(u[b] * 8)]++;
      }
      double chi2 = 0;
      for (int c : cells) chi2 += (c - 4.0) * (c - 4.0) / 4.0;
      EXPECT_LT(chi2, 30.0) << "dims " << a << "," << b;
    }
}

TEST(Sobol, ProposalDependsOnlyOnTheTrialNumber) {
  SearchSpace s({ParamSpec::uniform("a", 0, 1), ParamSpec::uniform("b", 1e-3, 1, true)});
  MiniStudy st(s);
  auto t = make_tuner("sobol", {}, 5);
  for (int i = 0; i < 10; ++i) st.tell(st.ask(*t), 1.0);
  auto fresh = make_tuner("sobol", {}, 5);
  MiniStudy empty(s);
  EXPECT_EQ(s.key(fresh->ask(empty.history(), 7).config), s.key(st.trials()[7]->config));
}

TEST(Sobol, ManyDimensionsBeyondTheTableStillWork) {
  std::vector<ParamSpec> ps;
  for (int i = 0; i < 40; ++i) ps.push_back(ParamSpec::uniform("p" + std::to_string(i), 0, 1));
  MiniStudy st{SearchSpace(ps)};
  auto t = make_tuner("sobol", {}, 5);
  for (int i = 0; i < 5; ++i) EXPECT_NO_THROW(st.space().check(st.ask(*t).config));
}

TEST(Grid, RefusesAContinuousParameterNamingItAndSuggestingStep) {
  SearchSpace s({ParamSpec::integer("n", 1, 3), ParamSpec::uniform("lr", 1e-4, 1e-1, true)});
  MiniStudy st(s);
  auto t = make_tuner("grid", {}, 1);
  try {
    st.ask(*t);
    FAIL() << "grid accepted a continuous parameter";
  } catch (const ConfigError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'lr'"), std::string::npos) << m;
    EXPECT_NE(m.find("step"), std::string::npos) << m;
  }
}

TEST(Grid, VisitsEveryConfigurationOfAConditionalSpaceOnceThenIsExhausted) {
  MiniStudy st(small_conditional_space());
  auto t = make_tuner("grid", {}, 1);
  std::set<std::string> keys;
  for (int i = 0; i < 12; ++i) {
    Trial& tr = st.ask(*t);
    ASSERT_NO_THROW(st.space().check(tr.config));
    EXPECT_TRUE(keys.insert(st.space().key(tr.config)).second) << "duplicate " << st.space().key(tr.config);
    if (i % 2) st.tell(tr, 1.0);  // the others stay RUNNING: they must be skipped too
  }
  EXPECT_THROW(st.ask(*t), SpaceExhausted);
}

TEST(Grid, OrderDependsOnTheSeedButCoversTheSameSet) {
  auto order = [](uint64_t seed) {
    MiniStudy st(small_conditional_space());
    auto t = make_tuner("grid", {}, seed);
    std::vector<std::string> keys;
    for (int i = 0; i < 12; ++i) keys.push_back(st.space().key(st.ask(*t).config));
    return keys;
  };
  auto a = order(1), b = order(2);
  EXPECT_NE(a, b);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
}

TEST(Grid, UnshuffledOrderIsTheNaturalOne) {
  MiniStudy st{SearchSpace({ParamSpec::integer("a", 1, 2), ParamSpec::integer("b", 1, 3)})};
  auto t = make_tuner("grid", {{"shuffle", false}}, 1);
  std::vector<std::string> got;
  for (int i = 0; i < 6; ++i) got.push_back(st.space().key(st.ask(*t).config));
  EXPECT_EQ(got, (std::vector<std::string>{"a=1;b=1;", "a=1;b=2;", "a=1;b=3;", "a=2;b=1;", "a=2;b=2;", "a=2;b=3;"}));
}

TEST(Grid, RefusesAGridLargerThanItsLimit) {
  MiniStudy st{SearchSpace({ParamSpec::integer("a", 1, 100), ParamSpec::integer("b", 1, 100)})};
  auto t = make_tuner("grid", {{"max_configs", 1000}}, 1);
  EXPECT_THROW(st.ask(*t), ConfigError);
}

class FiniteNoDuplicates : public ::testing::TestWithParam<std::string> {};

TEST_P(FiniteNoDuplicates, ProposesEachConfigurationAtMostOnceThenIsExhausted) {
  MiniStudy st(small_conditional_space());
  auto t = make_tuner(GetParam(), {}, 3);
  std::set<std::string> keys;
  for (int i = 0; i < 12; ++i) {
    Trial& tr = st.ask(*t);
    EXPECT_TRUE(keys.insert(st.space().key(tr.config)).second) << GetParam() << " repeated " << st.space().key(tr.config);
    if (i % 3 == 0) st.fail(tr); else st.tell(tr, static_cast<double>(i));
  }
  EXPECT_THROW(st.ask(*t), SpaceExhausted);
}

INSTANTIATE_TEST_SUITE_P(Basic, FiniteNoDuplicates, ::testing::Values("random", "sobol", "grid", "tpe"));

TEST(Random, ProposalDoesNotDependOnOtherTrials) {
  // Workers asking in a different order still get the proposal of their own trial number.
  SearchSpace s = every_kind_space();
  MiniStudy a(s), b(s);
  auto t = make_tuner("random", {}, 9);
  for (int i = 0; i < 4; ++i) a.tell(a.ask(*t), 0.5);
  EXPECT_EQ(s.key(t->ask(a.history(), 4).config), s.key(t->ask(b.history(), 4).config));
  EXPECT_NE(s.key(t->ask(b.history(), 4).config), s.key(t->ask(b.history(), 5).config));
}

TEST(Random, LogParametersAreUniformInLogSpace) {
  SearchSpace s({ParamSpec::uniform("lr", 1e-6, 1.0, true)});
  MiniStudy st(s);
  auto t = make_tuner("random", {}, 1);
  int below_1e3 = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i)
    if (std::get<double>(t->ask(st.history(), i).config.at("lr")) < 1e-3) ++below_1e3;
  // Half of the log range lies below 1e-3; a linear sampler would put 0.1% there.
  EXPECT_NEAR(below_1e3 / double(n), 0.5, 0.05);
}

TEST(DeriveSeed, DiffersByNumberAndStreamAndIsStable) {
  EXPECT_EQ(derive_seed(1, 2, 3), derive_seed(1, 2, 3));
  std::set<uint64_t> s;
  for (uint64_t seed = 0; seed < 4; ++seed)
    for (int64_t n = -1; n < 50; ++n)
      for (uint64_t st = 0; st < 3; ++st) s.insert(derive_seed(seed, n, st));
  EXPECT_EQ(s.size(), 4u * 51u * 3u);
}

TEST(Factory, ListsKindsAndRefusesUnknownOnesNamingTheValidOnes) {
  auto kinds = tuner_kinds();
  for (const char* k : {"random", "grid", "sobol"})
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k;
  for (const auto& k : kinds) EXPECT_EQ(make_tuner(k, {}, 1)->name(), k);
  try {
    make_tuner("bayes", {}, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("random"), std::string::npos) << e.what();
  }
  auto pk = pruner_kinds();
  for (const char* k : {"none", "median", "percentile", "patience", "threshold"})
    EXPECT_NE(std::find(pk.begin(), pk.end(), k), pk.end()) << k;
  EXPECT_THROW(make_pruner("sometimes", {}), ConfigError);
}

TEST(Factory, RefusesOptionsOfTheWrongType) {
  EXPECT_THROW(make_tuner("grid", {{"shuffle", "yes"}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("sobol", {{"skip", 1.5}}, 1), ConfigError);
  EXPECT_THROW(make_tuner("sobol", {{"skip", -1}}, 1), ConfigError);
  EXPECT_NO_THROW(make_tuner("sobol", {{"skip", 2.0}}, 1));  // YAML may give whole numbers as floats
  EXPECT_THROW(make_tuner("random", nlohmann::json::array({1}), 1), ConfigError);
}

}  // namespace
}  // namespace kestrel::tuners::testing
