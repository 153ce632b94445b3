// Tests of Study and TrialHandle: ask/tell, told-once handles, NaN values, resume, stale reclaim and retries,
// enqueue, best trial and Pareto front, all over a real SQLite file.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/error.hpp"
#include "engine/study.hpp"

namespace fs = std::filesystem;
using namespace kestrel;
using namespace kestrel::engine;
using search::ParamSpec;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("kestrel_study_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

StudyOptions options(const std::string& name = "s") {
  StudyOptions o;
  o.name = name;
  o.space = SearchSpace({ParamSpec::uniform("x", -5, 5), ParamSpec::integer("n", 1, 8),
                         ParamSpec::categorical("opt", {std::string("sgd"), std::string("adam")})});
  o.seed = 7;
  o.heartbeat_interval = 0;  // tests drive heartbeats explicitly
  return o;
}

std::shared_ptr<store::Store> open(const TempDir& d) {
  return store::open_store("sqlite:///" + (d.path / "k.db").string());
}

}  // namespace

TEST(Study, AskTellStoresCompleteTrialWithValues) {
  TempDir d;
  Study s(open(d), options());
  auto t = s.ask();
  EXPECT_EQ(t.number(), 0);
  double x = t.get_double("x");
  t.tell(x * x);
  auto all = s.trials();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state, TrialState::Complete);
  ASSERT_EQ(all[0].values.size(), 1u);
  EXPECT_DOUBLE_EQ(all[0].values[0], x * x);
}

TEST(Study, HandleCannotBeToldTwice) {
  TempDir d;
  Study s(open(d), options());
  auto t = s.ask();
  t.tell(1.0);
  EXPECT_THROW(t.tell(2.0), Error);
  EXPECT_THROW(t.tell_failed("x"), Error);
  EXPECT_EQ(s.trials()[0].values[0], 1.0);
}

TEST(Study, NanValueFailsTheTrialWithReason) {
  TempDir d;
  Study s(open(d), options());
  auto t = s.ask();
  t.tell(std::nan(""));
  auto tr = s.trials()[0];
  EXPECT_EQ(tr.state, TrialState::Failed);
  EXPECT_NE(tr.fail_reason.find("NaN"), std::string::npos);
}

TEST(Study, DroppedHandleFailsAsAbandoned) {
  TempDir d;
  Study s(open(d), options());
  { auto t = s.ask(); }
  auto tr = s.trials()[0];
  EXPECT_EQ(tr.state, TrialState::Failed);
  EXPECT_NE(tr.fail_reason.find("abandoned"), std::string::npos);
}

TEST(Study, ReopenedStudyContinuesNumbersAndProposesLikeUninterrupted) {
  TempDir a, b;
  std::vector<Config> straight, resumed;
  {
    Study s(open(a), options());
    for (int i = 0; i < 6; ++i) {
      auto t = s.ask();
      straight.push_back(t.config());
      t.tell(t.get_double("x"));
    }
  }
  for (int part = 0; part < 2; ++part) {
    Study s(open(b), options());
    for (int i = 0; i < 3; ++i) {
      auto t = s.ask();
      EXPECT_EQ(t.number(), part * 3 + i);
      resumed.push_back(t.config());
      t.tell(t.get_double("x"));
    }
  }
  EXPECT_EQ(straight, resumed);
}

TEST(Study, ReopeningWithAnotherSpaceIsRefused) {
  TempDir d;
  auto st = open(d);
  { Study s(st, options()); }
  auto o = options();
  o.space = SearchSpace({ParamSpec::uniform("x", -1, 1)});
  EXPECT_THROW(Study(st, o), ConfigError);
}

TEST(Study, ReportsAreStoredBeforeTell) {
  TempDir d;
  Study s(open(d), options());
  auto t = s.ask();
  t.report(0, 3.0);
  t.report(1, {{"value", 2.0}, {"acc", 0.5}});
  auto tr = s.trials()[0];
  EXPECT_EQ(tr.state, TrialState::Running);
  EXPECT_EQ(tr.last_report("value"), 2.0);
  EXPECT_EQ(tr.report_at("acc", 1), 0.5);
  t.tell(2.0);
}

TEST(Study, StaleRunningTrialIsFailedAsLostAndRetried) {
  TempDir d;
  auto o = options();
  o.stale_after = 0.05;
  o.retry_failed = 1;
  Study s(open(d), o);
  Config lost_config;
  {
    auto t = s.ask();
    lost_config = t.config();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto lost = s.reclaim_stale();
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_NE(lost[0].fail_reason.find("lost"), std::string::npos);
    // The original handle learns that its trial is gone.
    EXPECT_THROW(t.tell(1.0), StoreError);
  }
  auto retry = s.ask();  // the enqueued retry comes first, with the same configuration
  EXPECT_EQ(retry.config(), lost_config);
  EXPECT_EQ(retry.record().attrs.at("retry_of"), "0");
  retry.tell(1.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(s.reclaim_stale().empty());
}

TEST(Study, EnqueuedConfigIsValidatedAndAskedFirst) {
  TempDir d;
  Study s(open(d), options());
  Config bad{{"x", 9.0}, {"n", int64_t{2}}, {"opt", std::string("sgd")}};
  EXPECT_THROW(s.enqueue(bad), ConfigError);
  Config good{{"x", 1.5}, {"n", int64_t{2}}, {"opt", std::string("adam")}};
  s.enqueue(good);
  auto t = s.ask();
  EXPECT_EQ(t.config(), good);
  t.tell(0.0);
}

TEST(Study, BestTrialRespectsDirection) {
  TempDir d;
  auto o = options();
  o.objectives = {{"acc", search::Direction::Maximize}};
  Study s(open(d), o);
  for (double v : {0.3, 0.9, 0.5}) s.ask().tell(v);
  ASSERT_TRUE(s.best_trial());
  EXPECT_EQ(s.best_trial()->values[0], 0.9);
}

TEST(Study, ParetoFrontKeepsOnlyNonDominated) {
  TempDir d;
  auto o = options();
  o.objectives = {{"err", search::Direction::Minimize}, {"size", search::Direction::Minimize}};
  Study s(open(d), o);
  for (auto v : std::vector<std::vector<double>>{{1, 5}, {2, 2}, {3, 3}, {5, 1}, {2, 4}}) s.ask().tell(v);
  auto front = s.pareto_front();
  std::set<std::vector<double>> got;
  for (auto& t : front) got.insert(t.values);
  EXPECT_EQ(got, (std::set<std::vector<double>>{{1, 5}, {2, 2}, {5, 1}}));
}

TEST(Study, ManyThreadsAskAndTellWithoutLosingTrials) {
  TempDir d;
  Study s(open(d), options());
  std::vector<std::thread> th;
  for (int k = 0; k < 4; ++k)
    th.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto t = s.ask();
        t.tell(t.get_double("x"));
      }
    });
  for (auto& t : th) t.join();
  auto all = s.trials();
  ASSERT_EQ(all.size(), 100u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].number, static_cast<int64_t>(i));
    EXPECT_EQ(all[i].state, TrialState::Complete);
  }
}

TEST(Study, SpaceRoundTripsThroughJson) {
  auto o = options();
  search::ParamSpec m = ParamSpec::uniform("momentum", 0, 0.99);
  m.condition = search::Condition{"opt", {std::string("sgd")}};
  std::vector<search::ParamSpec> ps = o.space.params();
  ps.push_back(m);
  ps.push_back(ParamSpec::constant("c", true));
  SearchSpace sp(ps);
  auto back = space_from_json(space_to_json(sp));
  EXPECT_EQ(space_to_json(back), space_to_json(sp));
  EXPECT_TRUE(back.at("momentum").condition.has_value());
}
