// Tests of warm starts: mapping a source configuration onto a changed space (added, removed, re-ranged parameters,
// changed categories), the priors inserted into the new study, n_trials counting new trials only, resume without
// duplicates, and model-based tuners proposing near the source's optimum from their first asks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/evaluator.hpp"
#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "engine/sweep.hpp"
#include "engine/warm_start.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using kestrel::engine::testing::TempDir;
using search::Config;
using search::ParamSpec;
using search::Value;

namespace {

SearchSpace source_space() {
  return SearchSpace({ParamSpec::uniform("lr", 1e-4, 1e-1, true), ParamSpec::integer("width", 16, 256),
                      ParamSpec::categorical("opt", {std::string("sgd"), std::string("adam"), std::string("rmsprop")}),
                      ParamSpec::uniform("dropout", 0.0, 0.5)});
}

// The new space: lr re-ranged (narrower), width kept, opt loses rmsprop, dropout removed, momentum added.
SearchSpace target_space() {
  return SearchSpace({ParamSpec::uniform("lr", 1e-3, 1e-1, true), ParamSpec::integer("width", 16, 256),
                      ParamSpec::categorical("opt", {std::string("sgd"), std::string("adam")}),
                      ParamSpec::uniform("momentum", 0.0, 0.99)});
}

Config cfg(double lr, int64_t width, const std::string& opt, double dropout) {
  return {{"lr", lr}, {"width", width}, {"opt", opt}, {"dropout", dropout}};
}

StudyOptions opts(const std::string& name, SearchSpace space, const std::string& tuner = "random") {
  StudyOptions o;
  o.name = name;
  o.space = std::move(space);
  o.tuner = tuner;
  o.seed = 3;
  o.heartbeat_interval = 0;
  return o;
}

// A finished trial in `study` with the given config and value (through the store, as another run would leave it).
void add_complete(Study& s, const Config& c, double v, const std::map<std::string, std::string>& attrs = {}) {
  auto t = s.store().create_trial(s.id(), c, TrialState::Running, "test", attrs);
  s.store().finish(t.id, TrialState::Complete, {v});
}

}  // namespace

TEST(WarmStartMapping, KeepsSameNameParametersAndDropsRemovedOnes) {
  MappedConfig m = map_config(cfg(0.01, 64, "adam", 0.2), target_space(), {{"momentum", Value{0.0}}});
  ASSERT_TRUE(m.config) << m.reason;
  EXPECT_DOUBLE_EQ(std::get<double>(m.config->at("lr")), 0.01);
  EXPECT_EQ(std::get<int64_t>(m.config->at("width")), 64);
  EXPECT_EQ(std::get<std::string>(m.config->at("opt")), "adam");
  EXPECT_EQ(m.config->count("dropout"), 0u);
  EXPECT_EQ(m.dropped, std::vector<std::string>{"dropout"});
  EXPECT_EQ(m.filled, std::vector<std::string>{"momentum"});
  EXPECT_DOUBLE_EQ(std::get<double>(m.config->at("momentum")), 0.0);
}

TEST(WarmStartMapping, AddedParameterWithoutFillMakesTheTrialUnmappable) {
  MappedConfig m = map_config(cfg(0.01, 64, "adam", 0.2), target_space());
  EXPECT_FALSE(m.config);
  EXPECT_NE(m.reason.find("'momentum' is new"), std::string::npos) << m.reason;
}

TEST(WarmStartMapping, AddedFixedParameterTakesItsValue) {
  SearchSpace t({ParamSpec::uniform("lr", 1e-4, 1e-1, true), ParamSpec::constant("epochs", Value{int64_t{5}})});
  MappedConfig m = map_config({{"lr", 0.01}}, t);
  ASSERT_TRUE(m.config) << m.reason;
  EXPECT_EQ(std::get<int64_t>(m.config->at("epochs")), 5);
}

TEST(WarmStartMapping, ValueOutsideTheNewRangeIsSkippedNotClipped) {
  MappedConfig m = map_config(cfg(0.0005, 64, "adam", 0.2), target_space(), {{"momentum", Value{0.0}}});
  EXPECT_FALSE(m.config);
  EXPECT_NE(m.reason.find("outside the new range"), std::string::npos) << m.reason;
}

TEST(WarmStartMapping, CategoryMissingFromTheNewChoicesIsUnmappable) {
  MappedConfig m = map_config(cfg(0.01, 64, "rmsprop", 0.2), target_space(), {{"momentum", Value{0.0}}});
  EXPECT_FALSE(m.config);
  EXPECT_NE(m.reason.find("not among the new choices"), std::string::npos) << m.reason;
}

TEST(WarmStartMapping, TypesConvertOnlyWhenTheValueFits) {
  SearchSpace t({ParamSpec::integer("n", 1, 10), ParamSpec::uniform("x", 0, 10)});
  // An int becomes a float; an integral float becomes an int.
  MappedConfig ok = map_config({{"n", 4.0}, {"x", int64_t{3}}}, t);
  ASSERT_TRUE(ok.config) << ok.reason;
  EXPECT_EQ(std::get<int64_t>(ok.config->at("n")), 4);
  EXPECT_DOUBLE_EQ(std::get<double>(ok.config->at("x")), 3.0);
  EXPECT_FALSE(map_config({{"n", 4.5}, {"x", 1.0}}, t).config);
  EXPECT_FALSE(map_config({{"n", std::string("four")}, {"x", 1.0}}, t).config);
  // A step grid of the new space must hold the value.
  ParamSpec stepped = ParamSpec::integer("n", 0, 10, false, 2);
  SearchSpace g({stepped});
  EXPECT_TRUE(map_config({{"n", int64_t{4}}}, g).config);
  EXPECT_FALSE(map_config({{"n", int64_t{5}}}, g).config);
}

TEST(WarmStartMapping, InactiveParametersUnderNewConditionsAreDropped) {
  ParamSpec mom = ParamSpec::uniform("momentum", 0, 1);
  mom.condition = search::Condition{"opt", {Value{std::string("sgd")}}};
  SearchSpace t({ParamSpec::categorical("opt", {std::string("sgd"), std::string("adam")}), mom});
  MappedConfig m = map_config({{"opt", std::string("adam")}, {"momentum", 0.9}}, t);
  ASSERT_TRUE(m.config) << m.reason;
  EXPECT_EQ(m.config->count("momentum"), 0u);
  EXPECT_EQ(m.dropped, std::vector<std::string>{"momentum"});
}

TEST(WarmStart, CopiesMappableTrialsAsMarkedCompletePriorsAndReportsTheRest) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  Study src(st, opts("src", source_space()));
  add_complete(src, cfg(0.01, 64, "adam", 0.1), 0.30);     // maps
  add_complete(src, cfg(0.0005, 64, "adam", 0.1), 0.20);   // lr outside the new range
  add_complete(src, cfg(0.02, 128, "rmsprop", 0.1), 0.25); // category removed
  add_complete(src, cfg(0.05, 32, "sgd", 0.3), 0.40);      // maps
  {
    auto failed = src.ask();
    failed.tell_failed("boom");  // not COMPLETE: never considered
  }
  Study dst(st, opts("dst", target_space()));
  WarmStartSpec ws;
  ws.study = "src";
  ws.fill["momentum"] = 0.0;
  WarmStartReport rep = warm_start(dst, ws);
  EXPECT_EQ(rep.source_complete, 4);
  ASSERT_EQ(rep.mapped.size(), 2u);
  EXPECT_EQ(rep.mapped[0].source_number, 0);
  EXPECT_EQ(rep.mapped[1].source_number, 3);
  ASSERT_EQ(rep.skipped.size(), 2u);
  EXPECT_NE(rep.skipped[0].reason.find("outside the new range"), std::string::npos);
  EXPECT_NE(rep.skipped[1].reason.find("not among the new choices"), std::string::npos);
  EXPECT_EQ(rep.dropped_params, std::vector<std::string>{"dropout"});

  auto trials = dst.trials();
  ASSERT_EQ(trials.size(), 2u);
  for (const auto& t : trials) {
    EXPECT_EQ(t.state, TrialState::Complete);
    EXPECT_TRUE(is_warm_start(t));
    auto origin = nlohmann::json::parse(t.attrs.at(search::kAttrWarmStart));
    EXPECT_EQ(origin["study"], "src");
    EXPECT_NO_THROW(dst.options().space.check(t.config));
  }
  EXPECT_DOUBLE_EQ(trials[1].values[0], 0.40);
  // Priors are observations for the tuner, not results of this study.
  EXPECT_FALSE(dst.best_trial());
  // The report is kept with the study.
  auto info = st->find_study("dst");
  ASSERT_TRUE(info->attrs.count(kStudyAttrWarmStart));
}

TEST(WarmStart, IsDoneOncePerStudyAndResumeDoesNotDuplicatePriors) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  {
    Study src(st, opts("src", source_space()));
    for (int i = 0; i < 5; ++i) add_complete(src, cfg(0.01 * (i + 1), 64, "adam", 0.1), i);
  }
  WarmStartSpec ws;
  ws.study = "src";
  ws.fill["momentum"] = 0.5;
  {
    Study dst(st, opts("dst", target_space()));
    EXPECT_EQ(warm_start(dst, ws).mapped.size(), 5u);
  }
  // A resumed sweep opens the study again and asks for the warm start again.
  Study again(st, opts("dst", target_space()));
  WarmStartReport rep = warm_start(again, ws);
  EXPECT_TRUE(rep.already_done);
  EXPECT_EQ(rep.mapped.size(), 5u);  // the stored report
  EXPECT_EQ(again.trials().size(), 5u);
}

TEST(WarmStart, InterruptedCopyContinuesWithoutCopyingATrialTwice) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  Study src(st, opts("src", source_space()));
  for (int i = 0; i < 3; ++i) add_complete(src, cfg(0.01 * (i + 1), 64, "adam", 0.1), i);
  Study dst(st, opts("dst", target_space()));
  // What a copy killed after its first insert leaves: one prior, no study attr.
  nlohmann::json origin = {{"study", "src"}, {"number", 0}, {"storage", ""}};
  Config first = {{"lr", 0.01}, {"width", int64_t{64}}, {"opt", std::string("adam")}, {"momentum", 0.5}};
  add_complete(dst, first, 0.0, {{search::kAttrWarmStart, origin.dump()}});
  WarmStartSpec ws;
  ws.study = "src";
  ws.fill["momentum"] = 0.5;
  WarmStartReport rep = warm_start(dst, ws);
  EXPECT_FALSE(rep.already_done);
  EXPECT_EQ(rep.mapped.size(), 3u);
  auto trials = dst.trials();
  ASSERT_EQ(trials.size(), 3u);
  std::set<int64_t> sources;
  for (const auto& t : trials) sources.insert(nlohmann::json::parse(t.attrs.at(search::kAttrWarmStart))["number"].get<int64_t>());
  EXPECT_EQ(sources, (std::set<int64_t>{0, 1, 2}));
}

TEST(WarmStart, MaxTrialsKeepsTheBestAndFromAnotherStoreWorks) {
  TempDir d;
  auto other = kestrel::engine::testing::open_store_in(d, "other.db");
  {
    Study src(other, opts("src", source_space()));
    for (int i = 0; i < 6; ++i) add_complete(src, cfg(0.01 * (i + 1), 64, "adam", 0.1), 10.0 - i);  // minimize
  }
  auto st = kestrel::engine::testing::open_store_in(d);
  Study dst(st, opts("dst", target_space()));
  WarmStartSpec ws;
  ws.storage = "sqlite:///" + (d.path / "other.db").string();
  ws.study = "src";
  ws.max_trials = 2;
  ws.fill["momentum"] = 0.5;
  WarmStartReport rep = warm_start(dst, ws);
  ASSERT_EQ(rep.mapped.size(), 2u);
  EXPECT_EQ(rep.mapped[0].source_number, 4);
  EXPECT_EQ(rep.mapped[1].source_number, 5);
  EXPECT_EQ(rep.skipped.size(), 4u);
}

TEST(WarmStart, UnknownSourceStudyOrItselfIsAConfigError) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  Study dst(st, opts("dst", target_space()));
  WarmStartSpec ws;
  ws.study = "nope";
  EXPECT_THROW(warm_start(dst, ws), ConfigError);
  ws.study = "dst";
  EXPECT_THROW(warm_start(dst, ws), ConfigError);
  // A source store that does not exist is an error, and the look-up leaves no empty database behind.
  ws.study = "src";
  ws.storage = "sqlite:///" + (d.path / "typo.db").string();
  EXPECT_THROW(warm_start(dst, ws), ConfigError);
  EXPECT_FALSE(std::filesystem::exists(d.path / "typo.db"));
}

TEST(WarmStart, NTrialsCountsOnlyTheNewStudysOwnTrials) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  SearchSpace sp({ParamSpec::uniform("x", 0, 1)});
  Study src(st, opts("src", sp));
  for (int i = 0; i < 4; ++i) add_complete(src, {{"x", 0.2 * i}}, i);
  Study dst(st, opts("dst", sp));
  WarmStartSpec ws;
  ws.study = "src";
  ASSERT_EQ(warm_start(dst, ws).mapped.size(), 4u);
  CallbackEvaluator ev([](TrialHandle& h) { return std::vector<double>{h.get_double("x")}; });
  RunOptions ro;
  ro.n_trials = 3;
  ro.runs_dir = (d.path / "runs").string();
  auto sum = optimize(dst, ev, ro);
  EXPECT_EQ(sum.completed, 3);
  int64_t own = 0, priors = 0;
  for (const auto& t : dst.trials()) (is_warm_start(t) ? priors : own) += t.state == TrialState::Complete;
  EXPECT_EQ(own, 3);
  EXPECT_EQ(priors, 4);
  // The target is a result of this study: a prior at 0 does not stop a run aiming at 0 before it measured anything.
  ro.n_trials = 5;
  ro.target = 0.0;
  sum = optimize(dst, ev, ro);
  EXPECT_EQ(sum.completed, 2);
}

namespace {

// Source optimum at (0.8, 0.2) of the unit square.
double bowl(double x, double y) { return (x - 0.8) * (x - 0.8) + (y - 0.2) * (y - 0.2); }

// Mean distance to the optimum of the first `k` proposals of `tuner`, warm-started or not.
double first_asks_distance(const std::string& tuner, bool warm, int k) {
  TempDir d;
  auto st = kestrel::engine::testing::open_store_in(d);
  SearchSpace sp({ParamSpec::uniform("x", 0, 1), ParamSpec::uniform("y", 0, 1)});
  if (warm) {
    Study src(st, opts("src", sp, "random"));
    for (int i = 0; i < 40; ++i) {
      auto h = src.ask();
      h.tell(bowl(h.get_double("x"), h.get_double("y")));
    }
  }
  Study dst(st, opts("dst", sp, tuner));
  if (warm) {
    WarmStartSpec ws;
    ws.study = "src";
    EXPECT_EQ(warm_start(dst, ws).mapped.size(), 40u);
  }
  double total = 0;
  for (int i = 0; i < k; ++i) {
    auto h = dst.ask();
    double x = h.get_double("x"), y = h.get_double("y");
    total += std::sqrt(bowl(x, y));
    h.tell(bowl(x, y));
  }
  return total / k;
}

}  // namespace

TEST(WarmStart, TpeProposesNearTheSourceOptimumFromItsFirstAsks) {
  double warm = first_asks_distance("tpe", true, 5);
  double cold = first_asks_distance("tpe", false, 5);
  std::printf("tpe: mean distance to the source optimum of the first asks: warm %.3f, cold %.3f\n", warm, cold);
  // A uniform point of the square lies about 0.5 from (0.8, 0.2) on average; the source's model knows better.
  EXPECT_LT(warm, 0.2) << "cold start: " << cold;
  EXPECT_LT(warm, cold);
}

TEST(WarmStart, GpProposesNearTheSourceOptimumFromItsFirstAsks) {
  double warm = first_asks_distance("gp", true, 3);
  double cold = first_asks_distance("gp", false, 3);
  std::printf("gp: mean distance to the source optimum of the first asks: warm %.3f, cold %.3f\n", warm, cold);
  EXPECT_LT(warm, 0.2) << "cold start: " << cold;
  EXPECT_LT(warm, cold);
}

TEST(WarmStartSweep, SectionIsParsedAndBadKeysAreReportedWithTheirLine) {
  SweepSpec s = parse_sweep("study: b\nspace:\n  x0: {type: float, low: -5, high: 10}\n  x1: {type: float, low: 0, "
                            "high: 15}\nevaluator: {kind: function, function: branin}\n"
                            "warm_start: {study: a, max_trials: 10, fill: {x1: 2.5}}\n");
  ASSERT_TRUE(s.warm_start);
  EXPECT_EQ(s.warm_start->study, "a");
  EXPECT_EQ(s.warm_start->max_trials, 10);
  EXPECT_DOUBLE_EQ(std::get<double>(s.warm_start->fill.at("x1")), 2.5);
  try {
    parse_sweep("study: b\nevaluator: {kind: function, function: branin}\nwarm_start: {studdy: a}\n", "w.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("w.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("studdy"), std::string::npos) << e.what();
  }
}
