// Crash safety, measured: SIGKILL the `kestrel` process at random moments and resume, and run 4 worker processes
// on one SQLite study; then check the database against the invariants of issue 2 with raw SQL.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_test_util.hpp"

namespace kestrel::testing {
namespace {

// The trial program: sleeps a little (so kills land while trials run) and prints a value the test can recompute.
// The crash test uses 0.1-0.3 s per trial (a kill every ~0.25 s then interrupts about one trial in two); the
// workers test 10-70 ms.
const char* kCompute =
    R"(awk -v x="$1" -v y="$2" 'BEGIN { printf "loss=%.17g\n", (x - 0.3) * (x - 0.3) + 2 * (y + 0.1) * (y + 0.1) }'
)";
std::string script(bool slow) {
  return std::string("#!/bin/sh\n") + (slow ? "sleep \"0.$(( $3 % 3 + 1 ))\"\n" : "sleep \"0.0$(( $3 % 7 + 1 ))\"\n") +
         kCompute;
}

std::string sweep_text(int n_trials, int n_jobs) {
  return "study: crash\n"
         "seed: 5\n"
         "space:\n"
         "  x: {type: float, low: -1, high: 1}\n"
         "  y: {type: float, low: -1, high: 1}\n"
         "objective: {name: loss}\n"
         "tuner: random\n"
         "evaluator:\n"
         "  kind: command\n"
         "  command: [./trial.sh, \"{x}\", \"{y}\", \"{trial}\"]\n"
         "  grace: 0.2s\n"
         "budget: {n_trials: " +
         std::to_string(n_trials) +
         "}\n"
         "n_jobs: " +
         std::to_string(n_jobs) +
         "\n"
         "heartbeat: {interval: 0.2s, stale_after: 2s}\n"
         "runs_dir: runs\n";
}

struct Row {
  int64_t number;
  std::string state, reason;
  double x = NAN, y = NAN, value = NAN;
  bool has_value = false;
};

std::map<int64_t, Row> read_trials(const std::string& db_path) {
  RawDb db(db_path);
  std::map<int64_t, Row> out;
  auto rows = db.query(
      "SELECT t.number, t.state, t.fail_reason, "
      "(SELECT value FROM trial_params p WHERE p.trial_id = t.id AND p.name = 'x'), "
      "(SELECT value FROM trial_params p WHERE p.trial_id = t.id AND p.name = 'y'), "
      "(SELECT value FROM trial_values v WHERE v.trial_id = t.id AND v.idx = 0), "
      "(SELECT COUNT(*) FROM trial_values v WHERE v.trial_id = t.id) "
      "FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.name = 'crash' ORDER BY t.number");
  for (const auto& r : rows) {
    Row row;
    row.number = std::stoll(r[0]);
    row.state = r[1];
    row.reason = r[2];
    if (!r[3].empty()) row.x = std::stod(r[3]);
    if (!r[4].empty()) row.y = std::stod(r[4]);
    row.has_value = std::stoll(r[6]) > 0;
    if (!r[5].empty()) row.value = std::stod(r[5]);
    out[row.number] = row;
  }
  return out;
}

// The invariants every test here ends with.
void check_final_database(const std::string& db_path, int n_trials) {
  EXPECT_EQ(integrity_check(db_path), "ok");
  RawDb db(db_path);
  // No trial number used twice (checked in SQL, not through the store's own view).
  auto dup = db.query("SELECT study_id, number, COUNT(*) FROM trials GROUP BY study_id, number HAVING COUNT(*) > 1");
  EXPECT_TRUE(dup.empty()) << "trial number " << (dup.empty() ? "" : dup[0][1]) << " appears twice";
  auto trials = read_trials(db_path);
  int complete = 0;
  for (const auto& [n, t] : trials) {
    SCOPED_TRACE("trial " + std::to_string(n));
    EXPECT_NE(t.state, "RUNNING");
    EXPECT_NE(t.state, "WAITING");
    if (t.state == "COMPLETE") {
      ++complete;
      ASSERT_TRUE(t.has_value);
      double expect = (t.x - 0.3) * (t.x - 0.3) + 2 * (t.y + 0.1) * (t.y + 0.1);
      EXPECT_NEAR(t.value, expect, 1e-9);
    }
    if (t.state == "FAILED") {
      EXPECT_FALSE(t.reason.empty());
    }
    if (t.state != "COMPLETE") {
      EXPECT_FALSE(t.has_value);
    }
  }
  EXPECT_EQ(complete, n_trials);
  // Numbers are dense: 0..max with no gap (a number is assigned in the creating transaction and never reused).
  if (!trials.empty()) {
    EXPECT_EQ(trials.rbegin()->first + 1, static_cast<int64_t>(trials.size()));
  }
}

TEST(CrashSafety, KilledAtRandomMomentsAndResumedLosesNothing) {
  TempDir d;
  write_file(d / "trial.sh", script(/*slow=*/true), true);
  // Enough trials that 20 kills (about 2.5 trials finished between two of them) never use up the budget.
  const int kTrials = 100;
  write_file(d / "s.yaml", sweep_text(kTrials, 2));
  const std::string db_path = d / "k.db";
  const std::string url = "sqlite://" + db_path;

  std::mt19937 rng(20261128);
  std::uniform_int_distribution<int> delay_ms(0, 500);
  std::map<int64_t, Row> finished;  // every trial seen finished so far must stay exactly as it was
  int kills = 0, runs = 0;
  bool started = false;
  while (kills < 20) {
    std::vector<std::string> args = {started ? "resume" : "run", "s.yaml", "--storage", url};
    CliProcess p = spawn_cli(args, d.path(), "crash");
    ++runs;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    ::kill(p.pid, SIGKILL);
    int code = wait_cli(p.pid, 30);
    if (code != 128 + SIGKILL) {
      // The run ended on its own before the kill: it must have ended well.
      auto r = collect(p, code);
      ASSERT_TRUE(code == 0) << "exit " << code << "\n" << r.out << r.err;
    } else {
      ++kills;
    }
    if (!fs::exists(db_path)) continue;  // killed before the store was created
    {
      RawDb db(db_path);
      started = started || !db.query("SELECT id FROM studies WHERE name = 'crash'").empty();
    }
    auto now = read_trials(db_path);
    for (const auto& [n, t] : finished) {
      ASSERT_TRUE(now.count(n)) << "finished trial " << n << " disappeared";
      EXPECT_EQ(now[n].state, t.state) << "trial " << n;
      EXPECT_EQ(now[n].reason, t.reason) << "trial " << n;
      if (t.has_value) {
        EXPECT_EQ(now[n].value, t.value) << "trial " << n;
      }
    }
    for (const auto& [n, t] : now)
      if (t.state == "COMPLETE" || t.state == "FAILED" || t.state == "PRUNED") finished.emplace(n, t);
    if (std::count_if(now.begin(), now.end(), [](auto& kv) { return kv.second.state == "COMPLETE"; }) >= kTrials)
      break;  // the kills came too late to interrupt anything more
  }
  EXPECT_GE(kills, 20);
  int complete_before = 0;
  for (const auto& [n, t] : read_trials(db_path)) complete_before += t.state == "COMPLETE";
  // The last resume runs to the end of the budget.
  auto last = run_cli({"resume", "s.yaml", "--storage", url}, d.path(), 120);
  ASSERT_TRUE(exited_with(last, 0));
  check_final_database(db_path, kTrials);
  // Trials interrupted by a kill are FAILED with the reason the resume gave them.
  auto trials = read_trials(db_path);
  int lost = 0;
  for (const auto& [n, t] : trials)
    if (t.state == "FAILED") {
      EXPECT_THAT(t.reason, ::testing::AnyOf(::testing::HasSubstr("lost"), ::testing::HasSubstr("interrupted"),
                                             ::testing::HasSubstr("surplus")));
      ++lost;
    }
  std::printf("crash test: %d kills in %d runs, %d COMPLETE before the last resume, %d trials FAILED by the kills, "
              "%d COMPLETE at the end\n",
              kills, runs, complete_before, lost, kTrials);
  RecordProperty("kills", kills);
  RecordProperty("runs", runs);
  RecordProperty("failed_by_kills", lost);
}

TEST(CrashSafety, FourWorkersShareOneStudy) {
  TempDir d;
  write_file(d / "trial.sh", script(/*slow=*/false), true);
  const int kTrials = 80;
  write_file(d / "s.yaml", sweep_text(kTrials, 1));
  const std::string db_path = d / "k.db";
  const std::string url = "sqlite://" + db_path;
  std::vector<CliProcess> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(spawn_cli({"worker", "s.yaml", "--storage", url}, d.path(), "w"));
  // One worker dies mid-sweep and is started again: its trial must be reclaimed, not lost or duplicated.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(workers[0].pid, SIGKILL);
  EXPECT_EQ(wait_cli(workers[0].pid, 10), 128 + SIGKILL);
  workers[0] = spawn_cli({"worker", "s.yaml", "--storage", url}, d.path(), "w");
  for (auto& w : workers) {
    int code = wait_cli(w.pid, 120);
    auto r = collect(w, code);
    EXPECT_TRUE(exited_with(r, 0));
    EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("database is locked")));
  }
  check_final_database(db_path, kTrials);
}

}  // namespace
}  // namespace kestrel::testing
