// The Store conformance suite: studies, numbering, round trips, immutability, claiming, incremental reads, stale
// trials, and thread and process safety, run against every StoreFactory instantiated in this executable.
#include "tests/store/store_conformance.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.hpp"

namespace kestrel::store::testing {

namespace fs = std::filesystem;
using search::Direction;
using search::Value;

void StoreConformance::SetUp() {
  std::string tmpl = (fs::temp_directory_path() / "kestrel-store-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl;
}

void StoreConformance::TearDown() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::unique_ptr<Store> StoreConformance::open(bool manual_clock) {
  std::function<double()> clock;
  if (manual_clock) clock = [now = manual_now_] { return now->load(); };
  return GetParam().open(dir_, clock);
}

void StoreConformance::expect_integrity(Store& s) {
  if (GetParam().integrity_check) {
    EXPECT_EQ(GetParam().integrity_check(s), "ok");
  }
}

namespace {

const std::vector<Objective> kOneMin = {Objective{"loss", Direction::Minimize}};

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_P(StoreConformance, CreatedStudyIsFoundWithObjectivesAndSpace) {
  auto s = open();
  std::vector<Objective> objs = {{"loss", Direction::Minimize}, {"accuracy", Direction::Maximize}};
  StudyInfo made = s->create_study("mnist", objs, R"({"lr":{"type":"float"}})");
  EXPECT_GE(made.id, 0);
  auto found = s->find_study("mnist");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, made.id);
  EXPECT_EQ(found->name, "mnist");
  EXPECT_EQ(found->space_json, R"({"lr":{"type":"float"}})");
  ASSERT_EQ(found->objectives.size(), 2u);
  EXPECT_EQ(found->objectives[0].name, "loss");
  EXPECT_EQ(found->objectives[0].direction, Direction::Minimize);
  EXPECT_EQ(found->objectives[1].name, "accuracy");
  EXPECT_EQ(found->objectives[1].direction, Direction::Maximize);
  EXPECT_FALSE(s->find_study("other").has_value());
}

TEST_P(StoreConformance, ListsStudiesInCreationOrderWithAttributes) {
  auto s = open();
  auto a = s->create_study("a", kOneMin, "{}");
  auto b = s->create_study("b", kOneMin, "{}");
  s->set_study_attr(b.id, "sweep", "text: 1");
  s->set_study_attr(b.id, "sweep", "text: 2");  // overwrites
  s->set_study_attr(a.id, "seed", "7");
  auto all = s->list_studies();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "a");
  EXPECT_EQ(all[1].name, "b");
  EXPECT_EQ(all[0].attrs, (std::map<std::string, std::string>{{"seed", "7"}}));
  EXPECT_EQ(all[1].attrs, (std::map<std::string, std::string>{{"sweep", "text: 2"}}));
  EXPECT_EQ(s->find_study("b")->attrs.at("sweep"), "text: 2");
  EXPECT_THROW(s->set_study_attr(999999, "k", "v"), StoreError);
}

TEST_P(StoreConformance, DuplicateStudyNameIsRefusedAndFirstStudyKept) {
  auto s = open();
  auto first = s->create_study("dup", kOneMin, "first");
  EXPECT_THROW(s->create_study("dup", {{"acc", Direction::Maximize}}, "second"), StoreError);
  auto found = s->find_study("dup");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, first.id);
  EXPECT_EQ(found->space_json, "first");
  ASSERT_EQ(found->objectives.size(), 1u);
  EXPECT_EQ(found->objectives[0].name, "loss");
  EXPECT_EQ(s->list_studies().size(), 1u);
}

TEST_P(StoreConformance, TrialNumbersStartAtZeroPerStudyAndNeverRepeat) {
  auto s = open();
  auto a = s->create_study("a", kOneMin, "{}");
  auto b = s->create_study("b", kOneMin, "{}");
  EXPECT_EQ(s->create_trial(a.id, {}, TrialState::Running, "w").number, 0);
  EXPECT_EQ(s->create_trial(a.id, {}, TrialState::Waiting, "w").number, 1);
  EXPECT_EQ(s->create_trial(b.id, {}, TrialState::Running, "w").number, 0);
  Trial t = s->create_trial(a.id, {}, TrialState::Running, "w");
  EXPECT_EQ(t.number, 2);
  s->finish(t.id, TrialState::Failed, {}, "crashed");
  EXPECT_EQ(s->create_trial(a.id, {}, TrialState::Running, "w").number, 3);
  auto ts = s->trials(a.id);
  ASSERT_EQ(ts.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ts[i].number, i);
}

TEST_P(StoreConformance, NewTrialIsRunningWithWorkerAndHeartbeatOrWaiting) {
  auto s = open(true);
  auto st = s->create_study("s", kOneMin, "{}");
  manual_now_->store(1000.5);
  Trial r = s->create_trial(st.id, {}, TrialState::Running, "host:1");
  Trial w = s->create_trial(st.id, {}, TrialState::Waiting, "");
  for (const Trial& t : {r, s->trial(r.id)}) {
    EXPECT_EQ(t.state, TrialState::Running);
    EXPECT_EQ(t.worker, "host:1");
    if (GetParam().takes_clock) {
      EXPECT_EQ(t.heartbeat, 1000.5);
      EXPECT_EQ(t.start_time, 1000.5);
    } else {
      EXPECT_GT(t.heartbeat, 0.0);
    }
  }
  EXPECT_EQ(s->trial(w.id).state, TrialState::Waiting);
  EXPECT_THROW(s->create_trial(st.id, {}, TrialState::Complete, "w"), StoreError);
  EXPECT_THROW(s->create_trial(987654, {}, TrialState::Running, "w"), StoreError);
  EXPECT_THROW(s->trial(987654), StoreError);
}

TEST_P(StoreConformance, ParametersRoundTripWithTypeAndExactBits) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  Config c = {
      {"third", Value(1.0 / 3.0)},
      {"tenth", Value(0.1)},
      {"tiny", Value(std::numeric_limits<double>::denorm_min())},
      {"huge", Value(std::numeric_limits<double>::max())},
      {"neg_zero", Value(-0.0)},
      {"whole", Value(3.0)},
      {"next_after_one", Value(std::nextafter(1.0, 2.0))},
      {"inf", Value(std::numeric_limits<double>::infinity())},
      {"i_min", Value(std::numeric_limits<int64_t>::min())},
      {"i_max", Value(std::numeric_limits<int64_t>::max())},
      {"i_zero", Value(int64_t{0})},
      {"yes", Value(true)},
      {"no", Value(false)},
      {"opt", Value(std::string("adam"))},
      {"empty", Value(std::string())},
      {"unicode", Value(std::string("m\xc3\xbc \xe2\x86\x92 'q' \"d\""))},
      {"digits", Value(std::string("3.5"))},
  };
  Trial t = s->create_trial(st.id, c, TrialState::Running, "w");
  for (const Config& got : {t.config, s->trial(t.id).config, s->trials(st.id).at(0).config}) {
    ASSERT_EQ(got.size(), c.size());
    for (const auto& [name, v] : c) {
      SCOPED_TRACE(name);
      const Value& g = got.at(name);
      ASSERT_EQ(g.index(), v.index());
      if (auto d = std::get_if<double>(&v)) {
        EXPECT_TRUE(same_bits(*d, std::get<double>(g)));
      } else {
        EXPECT_EQ(g, v);
      }
    }
  }
}

TEST_P(StoreConformance, FinalValuesRoundTripExactly) {
  auto s = open();
  auto st = s->create_study("s", {{"a", Direction::Minimize}, {"b", Direction::Maximize}, {"c", Direction::Minimize}},
                            "{}");
  Trial t = s->create_trial(st.id, {}, TrialState::Running, "w");
  std::vector<double> v = {0.1 + 0.2, -1e-300, 12345.0};
  s->finish(t.id, TrialState::Complete, v);
  Trial got = s->trial(t.id);
  EXPECT_EQ(got.state, TrialState::Complete);
  ASSERT_EQ(got.values.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(got.values[i], v[i])) << i;
  EXPECT_GE(got.end_time, got.start_time);
}

TEST_P(StoreConformance, CompleteNeedsOneValuePerObjectiveAndChangesNothingOtherwise) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  Trial t = s->create_trial(st.id, {}, TrialState::Running, "w");
  EXPECT_THROW(s->finish(t.id, TrialState::Complete, {}), StoreError);
  EXPECT_THROW(s->finish(t.id, TrialState::Complete, {1.0, 2.0}), StoreError);
  EXPECT_THROW(s->finish(t.id, TrialState::Running, {}), StoreError);
  Trial got = s->trial(t.id);
  EXPECT_EQ(got.state, TrialState::Running);
  EXPECT_TRUE(got.values.empty());
  s->finish(t.id, TrialState::Pruned, {}, "pruned at step 3");
  EXPECT_EQ(s->trial(t.id).state, TrialState::Pruned);
  EXPECT_EQ(s->trial(t.id).fail_reason, "pruned at step 3");
}

TEST_P(StoreConformance, ReportOverwritesSameStepAndMetricAndKeepsOrder) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  Trial t = s->create_trial(st.id, {}, TrialState::Running, "w");
  s->report(t.id, 2, {{"loss", 0.5}, {"acc", 0.7}});
  s->report(t.id, 1, {{"loss", 0.9}});
  s->report(t.id, 2, {{"loss", 0.4}});  // overwrites (2, loss), keeps (2, acc)
  Trial got = s->trial(t.id);
  ASSERT_EQ(got.reports.size(), 3u);
  EXPECT_EQ(got.reports[0].step, 1);
  EXPECT_EQ(got.reports[0].metric, "loss");
  EXPECT_EQ(got.reports[0].value, 0.9);
  EXPECT_EQ(got.reports[1].step, 2);
  EXPECT_EQ(got.reports[1].metric, "acc");
  EXPECT_EQ(got.reports[1].value, 0.7);
  EXPECT_EQ(got.reports[2].metric, "loss");
  EXPECT_EQ(got.reports[2].value, 0.4);
  EXPECT_EQ(got.last_report("loss"), 0.4);
}

TEST_P(StoreConformance, FinishedTrialRefusesReportFinishAndHeartbeatButTakesAttributes) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  for (TrialState end : {TrialState::Complete, TrialState::Pruned, TrialState::Failed}) {
    SCOPED_TRACE(search::to_string(end));
    Trial t = s->create_trial(st.id, {{"x", Value(1.0)}}, TrialState::Running, "w");
    s->report(t.id, 0, {{"loss", 1.0}});
    s->finish(t.id, end, end == TrialState::Complete ? std::vector<double>{0.25} : std::vector<double>{}, "why");
    Trial before = s->trial(t.id);
    EXPECT_THROW(s->report(t.id, 1, {{"loss", 0.5}}), TrialFinishedError);
    EXPECT_THROW(s->report(t.id, 0, {{"loss", 0.5}}), TrialFinishedError);
    EXPECT_THROW(s->finish(t.id, TrialState::Complete, {0.1}), TrialFinishedError);
    EXPECT_THROW(s->finish(t.id, TrialState::Failed, {}, "again"), TrialFinishedError);
    EXPECT_THROW(s->heartbeat(t.id), TrialFinishedError);
    Trial after = s->trial(t.id);
    EXPECT_EQ(after.state, before.state);
    EXPECT_EQ(after.values, before.values);
    EXPECT_EQ(after.fail_reason, "why");
    EXPECT_EQ(after.end_time, before.end_time);
    EXPECT_EQ(after.heartbeat, before.heartbeat);
    ASSERT_EQ(after.reports.size(), 1u);
    EXPECT_EQ(after.reports[0].value, 1.0);
    s->set_trial_attr(t.id, "robust_acc", "0.61");
    EXPECT_EQ(s->trial(t.id).attrs.at("robust_acc"), "0.61");
  }
}

TEST_P(StoreConformance, TrialAttributesAreStoredAndOverwritten) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  Trial t = s->create_trial(st.id, {}, TrialState::Running, "w", {{"retry_of", "3"}, {"source", "enqueue"}});
  EXPECT_EQ(t.attrs.at("retry_of"), "3");
  s->set_trial_attr(t.id, "source", "tuner");
  s->set_trial_attr(t.id, "json", R"({"a":[1,2]})");
  auto got = s->trial(t.id).attrs;
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"json", R"({"a":[1,2]})"}, {"retry_of", "3"},
                                                      {"source", "tuner"}}));
  EXPECT_THROW(s->set_trial_attr(987654, "k", "v"), StoreError);
}

TEST_P(StoreConformance, HeartbeatMovesForwardWithTheStoreClock) {
  if (!GetParam().takes_clock) GTEST_SKIP() << GetParam().name << " does not take a manual clock";
  auto s = open(true);
  auto st = s->create_study("s", kOneMin, "{}");
  manual_now_->store(2000.0);
  Trial t = s->create_trial(st.id, {}, TrialState::Running, "w");
  manual_now_->store(2010.0);
  s->heartbeat(t.id);
  EXPECT_EQ(s->trial(t.id).heartbeat, 2010.0);
  EXPECT_EQ(s->trial(t.id).start_time, 2000.0);
  EXPECT_EQ(s->now(), 2010.0);
}

TEST_P(StoreConformance, ClaimWaitingTakesOldestFirstAndOnlyWaitingTrials) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  auto other = s->create_study("other", kOneMin, "{}");
  s->create_trial(other.id, {}, TrialState::Waiting, "");
  s->create_trial(st.id, {}, TrialState::Running, "w0");
  Trial w1 = s->create_trial(st.id, {{"x", Value(int64_t{1})}}, TrialState::Waiting, "");
  Trial w2 = s->create_trial(st.id, {{"x", Value(int64_t{2})}}, TrialState::Waiting, "");
  auto c1 = s->claim_waiting(st.id, "wA");
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->id, w1.id);
  EXPECT_EQ(c1->state, TrialState::Running);
  EXPECT_EQ(c1->worker, "wA");
  EXPECT_EQ(std::get<int64_t>(c1->config.at("x")), 1);
  auto c2 = s->claim_waiting(st.id, "wB");
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->id, w2.id);
  EXPECT_FALSE(s->claim_waiting(st.id, "wC").has_value());
  EXPECT_EQ(s->trial(w1.id).worker, "wA");
}

TEST_P(StoreConformance, RacingThreadsClaimEachWaitingTrialExactlyOnce) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  constexpr int kTrials = 60;
  for (int i = 0; i < kTrials; ++i) s->create_trial(st.id, {}, TrialState::Waiting, "");
  std::mutex m;
  std::vector<int64_t> claimed;
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w)
    threads.emplace_back([&, w] {
      while (auto t = s->claim_waiting(st.id, "w" + std::to_string(w))) {
        std::lock_guard lock(m);
        claimed.push_back(t->id);
      }
    });
  for (auto& t : threads) t.join();
  std::set<int64_t> unique(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), static_cast<size_t>(kTrials));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kTrials));
  for (const Trial& t : s->trials(st.id)) EXPECT_EQ(t.state, TrialState::Running);
}

TEST_P(StoreConformance, EightThreadsGetUniqueSequentialNumbersAndLoseNoWrite) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  constexpr int kThreads = 8, kEach = 40;
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        Trial t = s->create_trial(st.id, {{"w", Value(int64_t{w})}, {"i", Value(int64_t{i})}}, TrialState::Running,
                                  "t" + std::to_string(w));
        s->report(t.id, 0, {{"loss", w * 1000.0 + i}});
        s->finish(t.id, TrialState::Complete, {w * 1000.0 + i});
      }
    });
  for (auto& t : threads) t.join();
  auto ts = s->trials(st.id);
  ASSERT_EQ(ts.size(), static_cast<size_t>(kThreads * kEach));
  for (size_t n = 0; n < ts.size(); ++n) {
    const Trial& t = ts[n];
    EXPECT_EQ(t.number, static_cast<int64_t>(n));
    EXPECT_EQ(t.state, TrialState::Complete);
    double expect = std::get<int64_t>(t.config.at("w")) * 1000.0 + std::get<int64_t>(t.config.at("i"));
    ASSERT_EQ(t.values.size(), 1u);
    EXPECT_EQ(t.values[0], expect);
    EXPECT_EQ(t.last_report("loss"), expect);
  }
  expect_integrity(*s);
}

TEST_P(StoreConformance, TrialsChangedSinceReturnsEachChangeOnceAndAdvancesTheCursor) {
  auto s = open();
  auto st = s->create_study("s", kOneMin, "{}");
  auto other = s->create_study("other", kOneMin, "{}");
  Trial a = s->create_trial(st.id, {}, TrialState::Running, "w");
  Trial b = s->create_trial(st.id, {}, TrialState::Running, "w");
  s->create_trial(other.id, {}, TrialState::Running, "w");

  int64_t cursor = 0;
  auto all = s->trials_changed_since(st.id, cursor);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, a.id);
  EXPECT_EQ(all[1].id, b.id);
  int64_t after_all = cursor;
  EXPECT_GT(after_all, 0);

  EXPECT_TRUE(s->trials_changed_since(st.id, cursor).empty());
  EXPECT_EQ(cursor, after_all);

  s->finish(b.id, TrialState::Complete, {1.5});
  s->create_trial(other.id, {}, TrialState::Running, "w");  // another study's change is not ours
  auto ch = s->trials_changed_since(st.id, cursor);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].id, b.id);
  EXPECT_EQ(ch[0].state, TrialState::Complete);
  EXPECT_EQ(ch[0].values, std::vector<double>{1.5});

  s->report(a.id, 3, {{"loss", 0.1}});
  ch = s->trials_changed_since(st.id, cursor);
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].id, a.id);
  EXPECT_EQ(ch[0].reports.size(), 1u);

  s->set_trial_attr(b.id, "note", "x");
  Trial c = s->create_trial(st.id, {}, TrialState::Waiting, "");
  ch = s->trials_changed_since(st.id, cursor);
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[0].id, b.id);
  EXPECT_EQ(ch[1].id, c.id);

  // A second store object (another process, in real use) sees the same changes through its own cursor.
  if (GetParam().shared_between_processes) {
    auto s2 = open();
    int64_t cur2 = 0;
    EXPECT_EQ(s2->trials_changed_since(st.id, cur2).size(), 3u);
    s2->heartbeat(a.id);
    ch = s->trials_changed_since(st.id, cursor);
    ASSERT_EQ(ch.size(), 1u);
    EXPECT_EQ(ch[0].id, a.id);
  }
  EXPECT_THROW(s->trials_changed_since(987654, cursor), StoreError);
}

TEST_P(StoreConformance, FailStaleFailsOnlyRunningTrialsPastTheLimitWithReason) {
  if (!GetParam().takes_clock) GTEST_SKIP() << GetParam().name << " does not take a manual clock";
  auto s = open(true);
  auto st = s->create_study("s", kOneMin, "{}");
  manual_now_->store(1000.0);
  Trial old_run = s->create_trial(st.id, {}, TrialState::Running, "host-a:17");
  Trial old_done = s->create_trial(st.id, {}, TrialState::Running, "host-a:17");
  s->finish(old_done.id, TrialState::Complete, {0.5});
  Trial waiting = s->create_trial(st.id, {}, TrialState::Waiting, "");
  Trial refreshed = s->create_trial(st.id, {}, TrialState::Running, "host-b:3");
  manual_now_->store(1100.0);
  s->heartbeat(refreshed.id);
  Trial fresh = s->create_trial(st.id, {}, TrialState::Running, "host-c:9");
  manual_now_->store(1120.0);

  auto failed = s->fail_stale(st.id, 60.0);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].id, old_run.id);
  EXPECT_EQ(failed[0].state, TrialState::Failed);
  EXPECT_NE(failed[0].fail_reason.find("lost"), std::string::npos) << failed[0].fail_reason;
  EXPECT_NE(failed[0].fail_reason.find("120"), std::string::npos) << failed[0].fail_reason;
  EXPECT_NE(failed[0].fail_reason.find("host-a:17"), std::string::npos) << failed[0].fail_reason;
  EXPECT_EQ(failed[0].end_time, 1120.0);
  EXPECT_EQ(s->trial(old_run.id).state, TrialState::Failed);
  EXPECT_EQ(s->trial(old_done.id).state, TrialState::Complete);
  EXPECT_EQ(s->trial(waiting.id).state, TrialState::Waiting);
  EXPECT_EQ(s->trial(refreshed.id).state, TrialState::Running);
  EXPECT_EQ(s->trial(fresh.id).state, TrialState::Running);
  EXPECT_TRUE(s->fail_stale(st.id, 60.0).empty());
  EXPECT_THROW(s->report(old_run.id, 0, {{"loss", 1.0}}), TrialFinishedError);
}

TEST_P(StoreConformance, ConcurrentFailStaleFailsEachLostTrialExactlyOnce) {
  if (!GetParam().takes_clock) GTEST_SKIP() << GetParam().name << " does not take a manual clock";
  auto s = open(true);
  auto st = s->create_study("s", kOneMin, "{}");
  manual_now_->store(5000.0);
  constexpr int kLost = 40;
  for (int i = 0; i < kLost; ++i) s->create_trial(st.id, {}, TrialState::Running, "gone");
  manual_now_->store(6000.0);
  std::mutex m;
  std::vector<int64_t> failed;
  std::vector<std::thread> threads;
  for (int w = 0; w < 6; ++w)
    threads.emplace_back([&] {
      for (const Trial& t : s->fail_stale(st.id, 60.0)) {
        std::lock_guard lock(m);
        failed.push_back(t.id);
      }
    });
  for (auto& t : threads) t.join();
  std::set<int64_t> unique(failed.begin(), failed.end());
  EXPECT_EQ(failed.size(), static_cast<size_t>(kLost));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kLost));
  for (const Trial& t : s->trials(st.id)) EXPECT_EQ(t.state, TrialState::Failed);
}

TEST_P(StoreConformance, DataSurvivesClosingAndReopening) {
  if (!GetParam().shared_between_processes) GTEST_SKIP() << GetParam().name << " cannot be reopened";
  int64_t id = -1;
  {
    auto s = open();
    auto st = s->create_study("s", kOneMin, "space");
    Trial t = s->create_trial(st.id, {{"lr", Value(0.01)}}, TrialState::Running, "w");
    s->report(t.id, 1, {{"loss", 0.3}});
    s->finish(t.id, TrialState::Complete, {0.25});
    id = t.id;
  }
  auto s = open();
  auto st = s->find_study("s");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->space_json, "space");
  Trial t = s->trial(id);
  EXPECT_EQ(t.state, TrialState::Complete);
  EXPECT_EQ(t.values, std::vector<double>{0.25});
  EXPECT_EQ(std::get<double>(t.config.at("lr")), 0.01);
  EXPECT_EQ(t.report_at("loss", 1), 0.3);
  EXPECT_EQ(s->create_trial(st->id, {}, TrialState::Running, "w").number, 1);
}

TEST_P(StoreConformance, FourProcessesShareOneStudyWithUniqueNumbersAndNoLostWrite) {
  if (!GetParam().shared_between_processes) GTEST_SKIP() << GetParam().name << " is private to one process";
  int64_t study_id = -1;
  {
    auto s = open();
    study_id = s->create_study("shared", kOneMin, "{}").id;
    for (int i = 0; i < 20; ++i) s->create_trial(study_id, {}, TrialState::Waiting, "");
  }
  constexpr int kProcs = 4, kEach = 30;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      int rc = 0;
      try {
        auto s = GetParam().open(location(), {});
        for (int i = 0; i < kEach; ++i) {
          Trial t = s->create_trial(study_id, {{"p", Value(int64_t{p})}, {"i", Value(int64_t{i})}},
                                    TrialState::Running, "proc" + std::to_string(p));
          s->report(t.id, 0, {{"loss", p * 100.0 + i}});
          s->heartbeat(t.id);
          s->finish(t.id, TrialState::Complete, {p * 100.0 + i});
          if (auto w = s->claim_waiting(study_id, "proc" + std::to_string(p)))
            s->finish(w->id, TrialState::Pruned, {}, "claimed by " + std::to_string(p));
          int64_t cursor = 0;
          (void)s->trials_changed_since(study_id, cursor);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", p, e.what());
        rc = 3;
      }
      _exit(rc);
    }
    ASSERT_GT(pid, 0);
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  auto s = open();
  auto ts = s->trials(study_id);
  ASSERT_EQ(ts.size(), static_cast<size_t>(20 + kProcs * kEach));
  int complete = 0, pruned = 0;
  for (size_t n = 0; n < ts.size(); ++n) {
    const Trial& t = ts[n];
    EXPECT_EQ(t.number, static_cast<int64_t>(n));
    if (t.state == TrialState::Complete) {
      ++complete;
      double expect = std::get<int64_t>(t.config.at("p")) * 100.0 + std::get<int64_t>(t.config.at("i"));
      EXPECT_EQ(t.values, std::vector<double>{expect});
      EXPECT_EQ(t.last_report("loss"), expect);
    } else if (t.state == TrialState::Pruned) {
      ++pruned;
    }
  }
  EXPECT_EQ(complete, kProcs * kEach);
  EXPECT_EQ(pruned, 20);  // each waiting trial claimed by exactly one process
  expect_integrity(*s);
}

TEST_P(StoreConformance, SecondObjectOnSameLocationSeesWritesAtOnce) {
  if (!GetParam().shared_between_processes) GTEST_SKIP() << GetParam().name << " cannot be reopened";
  auto a = open();
  auto b = open();
  auto st = a->create_study("s", kOneMin, "{}");
  ASSERT_TRUE(b->find_study("s"));
  Trial t = b->create_trial(st.id, {}, TrialState::Running, "b");
  EXPECT_EQ(a->trial(t.id).worker, "b");
  a->finish(t.id, TrialState::Complete, {2.0});
  EXPECT_THROW(b->finish(t.id, TrialState::Complete, {3.0}), TrialFinishedError);
  EXPECT_EQ(b->trial(t.id).values, std::vector<double>{2.0});
}

}  // namespace kestrel::store::testing
