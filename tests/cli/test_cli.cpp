// End-to-end tests of the `kestrel` binary: example configs, every bad input of issue 2 (refused with file:line,
// nothing overwritten), failing commands, reports (trials/best/export), resume and interruption.
#include <pty.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test_util.hpp"

namespace kestrel::testing {
namespace {

using ::testing::HasSubstr;

const char* kBranin = R"(study: demo
seed: 3
space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
tuner: random
evaluator: {kind: function, function: branin}
budget: {n_trials: 5}
)";

std::string db_url(const TempDir& d) { return "sqlite://" + d / "k.db"; }

// --- example configs -----------------------------------------------------------------------------------------

std::vector<std::string> example_configs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(source_dir() + "/configs"))
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CliExamples, EveryExampleConfigValidates) {
  TempDir d;
  auto configs = example_configs();
  ASSERT_GE(configs.size(), 3u);
  for (const auto& c : configs) {
    auto r = run_cli({"validate", c}, d.path());
    EXPECT_TRUE(exited_with(r, 0)) << c;
    EXPECT_THAT(r.out, HasSubstr(": ok")) << c;
  }
}

bool uses_nas(const std::string& path) { return read_file(path).find("\nnas:") != std::string::npos; }

// Runs one example at a tiny budget; returns the run's result.
CliResult run_example(const TempDir& d, const std::string& c) {
  std::string study = fs::path(c).stem().string();
  return run_cli({"run", c, "--storage", db_url(d), "--study", study, "--n-trials", "3", "-j", "2"}, d.path(), 300);
}

void expect_three_done(const TempDir& d, const std::string& c) {
  std::string study = fs::path(c).stem().string();
  auto t = run_cli({"trials", "--json", "--storage", db_url(d), "--study", study}, d.path());
  ASSERT_TRUE(exited_with(t, 0));
  auto j = nlohmann::json::parse(t.out);
  int done = 0;
  for (const auto& tr : j) {
    // Warm-start priors (configs/transfer_sweep.yaml copies the finished trials of another study) are not runs of
    // this sweep and do not count toward n_trials.
    if (tr.contains("warm_start")) continue;
    done += tr["state"] == "COMPLETE" || tr["state"] == "PRUNED";
  }
  EXPECT_EQ(done, 3);
}

TEST(CliExamples, EveryExampleConfigRunsAtATinyBudget) {
  TempDir d;
  for (const auto& c : example_configs()) {
    if (uses_nas(c)) continue;  // NasExampleConfigsRunAtATinyBudget
    SCOPED_TRACE(c);
    auto r = run_example(d, c);
    ASSERT_TRUE(exited_with(r, 0));
    expect_three_done(d, c);
  }
}

TEST(CliExamples, NasExampleConfigsRunAtATinyBudget) {
  TempDir d;
  int ran = 0;
  for (const auto& c : example_configs()) {
    if (!uses_nas(c)) continue;
    SCOPED_TRACE(c);
    auto r = run_example(d, c);
    ASSERT_TRUE(exited_with(r, 0)) << r.err;
    expect_three_done(d, c);
    ++ran;
  }
  EXPECT_GE(ran, 1);
}

// --- bad sweep files -------------------------------------------------------------------------------------------

CliResult validate_text(const TempDir& d, const std::string& text) {
  write_file(d / "bad.yaml", text);
  return run_cli({"validate", "bad.yaml"}, d.path());
}

TEST(CliBadInput, MalformedYamlNamesFileLineAndColumn) {
  TempDir d;
  auto r = validate_text(d, "study: x\nspace:\n  x0: {type: float, low: 0, high: 1\nevaluator: {kind: function}\n");
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, ::testing::ContainsRegex("bad\\.yaml:[34]:[0-9]+: malformed YAML"));
}

TEST(CliBadInput, UnknownKeyGetsLineAndSuggestion) {
  TempDir d;
  std::string text = kBranin;
  text.replace(text.find("budget: {n_trials: 5}"), 21, "budget:\n  n_trail: 5");
  auto r = validate_text(d, text);
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:9: unknown key 'n_trail' in budget (did you mean 'n_trials'?)"));
}

TEST(CliBadInput, WrongTypeNamesLineAndKey) {
  TempDir d;
  std::string text = kBranin;
  text.replace(text.find("n_trials: 5"), 11, "n_trials: ten");
  auto r = validate_text(d, text);
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:8: budget.n_trials: expected an integer, got 'ten'"));
}

TEST(CliBadInput, ImpossibleRangeIsRefusedBeforeAnythingRuns) {
  TempDir d;
  std::string text = kBranin;
  text.replace(text.find("low: 0, high: 15"), 16, "low: 15, high: 0");
  write_file(d / "bad.yaml", text);
  auto r = run_cli({"run", "bad.yaml", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:5: space.x1: impossible range: low (15) must be < high (0)"));
  EXPECT_FALSE(fs::exists(d / "k.db")) << "a refused sweep must not create a database";
}

TEST(CliBadInput, LogScaleWithNonPositiveLowIsRefused) {
  TempDir d;
  std::string text = kBranin;
  text.replace(text.find("low: 0, high: 15"), 16, "low: 0, high: 15, log: true");
  auto r = validate_text(d, text);
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:5: space.x1: a log scale needs low > 0"));
}

TEST(CliBadInput, EveryProblemIsReportedAtOnce) {
  TempDir d;
  auto r = validate_text(d, "study: x\nspace:\n  a: {type: flaot, low: 0, high: 1}\n  b: {type: int, low: 3, high: 1}\n"
                            "evaluator: {kind: function, function: branin}\nn_jobs: 0\n");
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:3: space.a.type: unknown type 'flaot' (did you mean 'float'?)"));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:4: space.b: impossible range"));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:6: n_jobs: must be >= 1"));
}

std::string command_sweep(const std::string& program, const std::string& extra = "") {
  return "study: cmd\nspace:\n  x: {type: float, low: 0, high: 1}\nevaluator:\n  kind: command\n  command: [" + program +
         ", \"{x}\"]\n" + extra + "budget: {n_trials: 2}\n";
}

TEST(CliBadInput, MissingCommandIsRefusedWithLine) {
  TempDir d;
  write_file(d / "bad.yaml", command_sweep("./no-such-script.sh"));
  auto r = run_cli({"run", "bad.yaml", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:6: evaluator.command"));
  EXPECT_THAT(r.err, HasSubstr("no-such-script.sh"));
  EXPECT_FALSE(fs::exists(d / "k.db"));
  auto onpath = validate_text(d, command_sweep("kestrel-no-such-program"));
  EXPECT_TRUE(exited_with(onpath, 2));
  EXPECT_THAT(onpath.err, HasSubstr("kestrel-no-such-program"));
}

TEST(CliBadInput, NonExecutableCommandIsRefused) {
  TempDir d;
  write_file(d / "script.sh", "#!/bin/sh\necho loss=1\n", /*executable=*/false);
  write_file(d / "bad.yaml", command_sweep("./script.sh"));
  auto r = run_cli({"run", "bad.yaml", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:6: evaluator.command"));
  EXPECT_THAT(r.err, HasSubstr("not executable"));
  EXPECT_FALSE(fs::exists(d / "k.db"));
}

TEST(CliBadInput, UnknownPlaceholderGetsSuggestion) {
  TempDir d;
  write_file(d / "ok.sh", "#!/bin/sh\necho value=1\n", true);
  auto r = validate_text(d, command_sweep("./ok.sh").replace(command_sweep("./ok.sh").find("\"{x}\""), 5, "\"{xx}\""));
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("placeholder {xx} names no parameter (did you mean {x}?)"));
}

// --- bad databases ---------------------------------------------------------------------------------------------

TEST(CliBadInput, ReadOnlyDatabaseIsRefusedAndUnchanged) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path()), 0));
  fs::permissions(d / "k.db", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  std::string before = read_file(d / "k.db");
  auto r = run_cli({"run", "s.yaml", "--storage", db_url(d), "--study", "second"}, d.path());
  EXPECT_TRUE(exited_with(r, 3));
  EXPECT_THAT(r.err, HasSubstr("read-only"));
  EXPECT_EQ(read_file(d / "k.db"), before);
}

TEST(CliBadInput, ForeignSqliteDatabaseIsRefusedAndUnchanged) {
  TempDir d;
  // Someone else's SQLite database, made with the sqlite3 API directly.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((d / "foreign.db").c_str(), &raw), SQLITE_OK);
  sqlite3_exec(raw, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers VALUES (1, 'x');",
               nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  std::string before = read_file(d / "foreign.db");
  write_file(d / "s.yaml", kBranin);
  auto r = run_cli({"run", "s.yaml", "--storage", "sqlite://" + d / "foreign.db"}, d.path());
  EXPECT_TRUE(exited_with(r, 3));
  EXPECT_EQ(read_file(d / "foreign.db"), before);

  write_file(d / "notes.db", "these are my notes, not a database\n");
  auto r2 = run_cli({"run", "s.yaml", "--storage", "sqlite://" + d / "notes.db"}, d.path());
  EXPECT_TRUE(exited_with(r2, 3));
  EXPECT_EQ(read_file(d / "notes.db"), "these are my notes, not a database\n");
}

TEST(CliBadInput, LockedDatabaseIsRefusedAfterTheBusyTimeout) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path()), 0));
  RawDb holder(d / "k.db");
  holder.exec("BEGIN EXCLUSIVE");  // another program holds the write lock and does not let go
  auto r = run_cli({"run", "s.yaml", "--storage", db_url(d), "--study", "second", "--busy-timeout", "1"}, d.path());
  holder.exec("ROLLBACK");
  EXPECT_TRUE(exited_with(r, 3));
  EXPECT_THAT(r.err, HasSubstr("locked"));
  auto list = run_cli({"list", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(list, 0));
  EXPECT_THAT(list.out, HasSubstr("demo"));
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr("second")));
}

TEST(CliBadInput, ReadingCommandsDoNotCreateADatabase) {
  TempDir d;
  auto r = run_cli({"status"}, d.path());
  EXPECT_TRUE(exited_with(r, 3));
  EXPECT_THAT(r.err, HasSubstr("no database"));
  EXPECT_FALSE(fs::exists(d / "kestrel.db"));
}

TEST(CliBadInput, RunContinuesItsOwnStudyButRefusesAnotherSweepsStudy) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--n-trials", "3"}, d.path()), 0));  // default: ./kestrel.db
  EXPECT_TRUE(fs::exists(d / "kestrel.db"));
  // The same file again: the study continues (with the stored overrides, here raised to 5 trials).
  auto again = run_cli({"run", "s.yaml", "--n-trials", "5"}, d.path());
  ASSERT_TRUE(exited_with(again, 0));
  EXPECT_THAT(again.out, HasSubstr("continuing study 'demo'"));
  EXPECT_THAT(again.out, HasSubstr("trial 4 COMPLETE"));
  EXPECT_THAT(again.out, ::testing::Not(HasSubstr("trial 5 ")));
  // A changed file under the same study name is refused, and nothing is added.
  write_file(d / "s.yaml", std::string(kBranin) + "n_jobs: 2\n");
  auto r = run_cli({"run", "s.yaml"}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("already exists"));
  EXPECT_THAT(r.err, HasSubstr("kestrel resume"));
  auto list = run_cli({"list", "--json"}, d.path());
  ASSERT_TRUE(exited_with(list, 0));
  EXPECT_EQ(nlohmann::json::parse(list.out)[0]["trials"], 5);
}

TEST(CliBadInput, UnknownSubcommandOrOptionIsAUsageError) {
  TempDir d;
  EXPECT_TRUE(exited_with(run_cli({"frobnicate"}, d.path()), 2));
  EXPECT_TRUE(exited_with(run_cli({"trials", "--jsn"}, d.path()), 2));
  EXPECT_TRUE(exited_with(run_cli({"--help"}, d.path()), 0));
}

// --- failing commands: each trial fails alone, with its reason --------------------------------------------------

TEST(CliCommands, EachBrokenCommandFailsAloneWithItsReason) {
  TempDir d;
  write_file(d / "trial.sh", R"(#!/bin/sh
case "$1" in
  ok) echo "loss=0.5" ;;
  crash) echo "loss=0.1"; kill -SEGV $$ ;;
  exit3) echo "bad things" >&2; exit 3 ;;
  hang) sleep 30 ;;
  silent) ;;
  nan) echo "loss=nan" ;;
  garbage) echo "loss=banana"; echo "%%%%" ;;
esac
)",
             true);
  write_file(d / "s.yaml", R"(study: broken
space:
  mode: {type: categorical, choices: [ok, crash, exit3, hang, silent, nan, garbage]}
objective: {name: loss}
tuner: grid
evaluator:
  kind: command
  command: [./trial.sh, "{mode}"]
  timeout: 1s
  grace: 0.5s
budget: {n_trials: 7, max_failed: 12, timeout: 40s}
n_jobs: 4
)");
  auto r = run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path(), 60);
  ASSERT_TRUE(exited_with(r, 0));
  auto t = run_cli({"trials", "--json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(t, 0));
  std::map<std::string, nlohmann::json> by_mode;
  for (const auto& tr : nlohmann::json::parse(t.out)) by_mode[tr["params"]["mode"].get<std::string>()] = tr;
  ASSERT_EQ(by_mode.size(), 7u) << t.out;
  EXPECT_EQ(by_mode["ok"]["state"], "COMPLETE");
  EXPECT_DOUBLE_EQ(by_mode["ok"]["values"]["loss"].get<double>(), 0.5);
  for (const char* m : {"crash", "exit3", "hang", "silent", "nan", "garbage"}) {
    EXPECT_EQ(by_mode[m]["state"], "FAILED") << m;
    EXPECT_FALSE(by_mode[m]["reason"].get<std::string>().empty()) << m;
  }
  EXPECT_THAT(by_mode["crash"]["reason"].get<std::string>(), HasSubstr("signal"));
  EXPECT_THAT(by_mode["exit3"]["reason"].get<std::string>(), HasSubstr("exit code 3"));
  EXPECT_THAT(by_mode["hang"]["reason"].get<std::string>(), HasSubstr("timeout"));
}

// --- reports ---------------------------------------------------------------------------------------------------

TEST(CliReports, TrialsBestAndExportAgree) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  auto run = run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(run, 0));
  // Off a terminal: one line per finished trial.
  for (int i = 0; i < 5; ++i) EXPECT_THAT(run.out, HasSubstr("trial " + std::to_string(i) + " COMPLETE value="));

  auto tj = run_cli({"trials", "--json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(tj, 0));
  auto trials = nlohmann::json::parse(tj.out);
  ASSERT_EQ(trials.size(), 5u);
  double best_value = INFINITY;
  int64_t best_number = -1;
  for (const auto& t : trials) {
    double x0 = t["params"]["x0"], x1 = t["params"]["x1"];
    // Branin, computed here independently of the engine.
    const double a = 1, b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, r = 6, s = 10, tt = 1 / (8 * M_PI);
    double f = a * std::pow(x1 - b * x0 * x0 + c * x0 - r, 2) + s * (1 - tt) * std::cos(x0) + s;
    EXPECT_NEAR(t["values"]["value"].get<double>(), f, 1e-9 * std::max(1.0, std::fabs(f)));
    if (f < best_value) best_value = f, best_number = t["number"];
  }
  auto bj = run_cli({"best", "--json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(bj, 0));
  auto best = nlohmann::json::parse(bj.out);
  EXPECT_EQ(best["number"].get<int64_t>(), best_number);

  auto table = run_cli({"trials", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(table, 0));
  EXPECT_THAT(table.out, ::testing::StartsWith("#  state"));
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 6);

  auto csv = run_cli({"export", "--format", "csv", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(csv, 0));
  EXPECT_THAT(csv.out, ::testing::StartsWith("number,state,value,params.x0,params.x1,duration_s,start,end,worker,reason\n"));
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 6);

  auto js = run_cli({"export", "--format", "json", "-o", "out.json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(js, 0));
  auto exported = nlohmann::json::parse(read_file(d / "out.json"));
  EXPECT_EQ(exported["study"], "demo");
  ASSERT_EQ(exported["trials"].size(), 5u);
  EXPECT_EQ(exported["trials"][0]["values"], trials[0]["values"]);

  auto status = run_cli({"status", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(status, 0));
  EXPECT_THAT(status.out, HasSubstr("COMPLETE 5"));
  EXPECT_THAT(status.out, HasSubstr("trial " + std::to_string(best_number)));
}

TEST(CliReports, SeveralStudiesNeedAStudyName) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d), "--n-trials", "2"}, d.path()), 0));
  ASSERT_TRUE(exited_with(
      run_cli({"run", "s.yaml", "--storage", db_url(d), "--study", "other", "--n-trials", "2"}, d.path()), 0));
  auto r = run_cli({"best", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("--study"));
  auto list = run_cli({"list", "--json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(list, 0));
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 2u);
}

// --- resume ----------------------------------------------------------------------------------------------------

std::vector<int64_t> numbers_of(const TempDir& d, const std::string& study) {
  auto r = run_cli({"trials", "--json", "--storage", db_url(d), "--study", study}, d.path());
  std::vector<int64_t> out;
  if (r.code != 0) return out;
  for (const auto& t : nlohmann::json::parse(r.out)) out.push_back(t["number"]);
  return out;
}

TEST(CliResume, ResumeWithoutTheFileContinuesTheNumbers) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d), "--n-trials", "3"}, d.path()), 0));
  auto before = run_cli({"trials", "--json", "--storage", db_url(d)}, d.path());
  fs::remove(d / "s.yaml");  // the study carries its sweep
  auto r = run_cli({"resume", "--storage", db_url(d), "--n-trials", "7"}, d.path());
  ASSERT_TRUE(exited_with(r, 0));
  EXPECT_THAT(r.out, HasSubstr("continuing study 'demo'"));
  auto nums = numbers_of(d, "demo");
  EXPECT_EQ(nums, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  // The first three trials are untouched.
  auto after = nlohmann::json::parse(run_cli({"trials", "--json", "--storage", db_url(d)}, d.path()).out);
  auto first = nlohmann::json::parse(before.out);
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(after[i], first[i]);
  // A later resume without --n-trials keeps the stored budget of 7: nothing more to do.
  auto again = run_cli({"resume", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(again, 0));
  EXPECT_EQ(numbers_of(d, "demo").size(), 7u);
}

TEST(CliResume, ResumeOfAnUnknownStudyIsAUsageError) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d), "--n-trials", "1"}, d.path()), 0));
  auto r = run_cli({"resume", "--storage", db_url(d), "--study", "nope"}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("no study 'nope'"));
}

TEST(CliResume, ResumeRefusesAChangedSpace) {
  TempDir d;
  write_file(d / "s.yaml", kBranin);
  ASSERT_TRUE(exited_with(run_cli({"run", "s.yaml", "--storage", db_url(d), "--n-trials", "1"}, d.path()), 0));
  std::string changed = kBranin;
  changed.replace(changed.find("high: 10"), 8, "high: 12");
  write_file(d / "s.yaml", changed);
  auto r = run_cli({"resume", "s.yaml", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_EQ(numbers_of(d, "demo").size(), 1u);
}

// --- interruption ----------------------------------------------------------------------------------------------

TEST(CliInterrupt, SigintStopsRunningCommandsMarksThemFailedAndExits130) {
  TempDir d;
  write_file(d / "slow.sh", "#!/bin/sh\necho $$ > \"pid.$1\"\nsleep 30\necho loss=1\n", true);
  write_file(d / "s.yaml", R"(study: slow
space:
  i: {type: int, low: 0, high: 1000}
objective: {name: loss}
evaluator:
  kind: command
  command: [./slow.sh, "{trial}"]
  grace: 1s
budget: {n_trials: 10}
n_jobs: 2
runs_dir: runs
)");
  CliProcess p = spawn_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path());
  // Wait until both commands are running.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::vector<std::string> pid_files;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_files.clear();
    for (const auto& e : fs::recursive_directory_iterator(d.path()))
      if (e.path().filename().string().rfind("pid.", 0) == 0) pid_files.push_back(e.path().string());
    if (pid_files.size() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(pid_files.size(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(p.pid, SIGINT);
  int code = wait_cli(p.pid, 20);
  auto r = collect(p, code);
  EXPECT_TRUE(exited_with(r, 130));
  for (const auto& f : pid_files) {
    pid_t child = std::stoi(read_file(f));
    EXPECT_FALSE(pid_alive(child)) << "command " << child << " outlived the interrupt";
  }
  auto trials = nlohmann::json::parse(run_cli({"trials", "--json", "--storage", db_url(d)}, d.path()).out);
  ASSERT_GE(trials.size(), 2u);
  for (const auto& t : trials) {
    EXPECT_EQ(t["state"], "FAILED");
    EXPECT_THAT(t["reason"].get<std::string>(), HasSubstr("interrupted"));
  }
}

TEST(CliCommands, NasArchitectureReachesTheCommandAsItsCanonicalString) {
  TempDir d;
  // Cells' canonical strings start with '|'; anything else scores NaN and would fail the trial.
  write_file(d / "score.sh", "#!/bin/sh\necho \"$KESTREL_ARCH\" > \"arch.$2\"\n"
                             "case \"$1\" in \"|\"*) echo score=1 ;; *) echo score=nan ;; esac\n", true);
  write_file(d / "s.yaml", R"(study: cells
nas:
  space: {type: cell}
objective: {name: score, direction: maximize}
tuner: random
evaluator:
  kind: command
  command: [./score.sh, "{arch}", "{trial}"]
budget: {n_trials: 3}
)");
  auto r = run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(r, 0));
  auto ex = run_cli({"export", "--format", "json", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(ex, 0));
  auto j = nlohmann::json::parse(ex.out);
  ASSERT_EQ(j["trials"].size(), 3u);
  for (const auto& t : j["trials"]) {
    EXPECT_EQ(t["state"], "COMPLETE");
    std::string arch = t["attrs"]["arch"];
    EXPECT_EQ(arch[0], '|');
    EXPECT_EQ(read_file(d / ("arch." + std::to_string(t["number"].get<int>()))), arch + "\n");
  }
}

// --- progress on a terminal -----------------------------------------------------------------------------------

TEST(CliProgress, OnATerminalOneLineIsRedrawnInPlace) {
  TempDir d;
  // A sweep slow enough (0.3 s per trial) for the redraw thread to draw between trials.
  write_file(d / "slow.sh", "#!/bin/sh\nsleep 0.3\necho value=$1\n", true);
  write_file(d / "s.yaml", "study: tty\nspace:\n  x: {type: float, low: 0, high: 1}\nevaluator:\n  kind: command\n"
                           "  command: [./slow.sh, \"{x}\"]\nbudget: {n_trials: 4}\n");
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::chdir(d.path().c_str()) != 0) ::_exit(126);
    std::string bin = kestrel_bin(), url = db_url(d);
    ::execl(bin.c_str(), bin.c_str(), "run", "s.yaml", "--storage", url.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child has exited and the terminal is closed
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(master);
  EXPECT_EQ(wait_cli(pid, 30), 0) << out;
  EXPECT_THAT(out, HasSubstr("\r\x1b[K"));
  EXPECT_THAT(out, ::testing::ContainsRegex("[0-9]/4 done, [0-9] running"));
  EXPECT_THAT(out, HasSubstr("4/4 done"));
  EXPECT_THAT(out, HasSubstr("elapsed"));
  EXPECT_THAT(out, HasSubstr("ETA"));
  // No per-trial log lines on a terminal (only failures and new bests scroll above the live line).
  EXPECT_THAT(out, ::testing::Not(HasSubstr("[2/4] trial")));
}

// --- train -----------------------------------------------------------------------------------------------------

TEST(CliTrain, TrainsATinyModelAndReportsEveryEpoch) {
  TempDir d;
  write_file(d / "m.yaml", "model_file: " + source_dir() + "/configs/models/mlp.yaml\n" +
                               "data: {subset: 600, test_subset: 200}\n"
                               "training: {epochs: 2, threads: 1, batch_size: 64, target_accuracy: 0}\n");
  auto r = run_cli({"train", "m.yaml", "--json"}, d.path(), 120);
  ASSERT_TRUE(exited_with(r, 0));
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  ASSERT_EQ(j["history"].size(), 2u);
  EXPECT_EQ(j["history"][1]["epoch"], 2);
  EXPECT_GT(j["param_count"].get<int64_t>(), 200000);
  EXPECT_TRUE(j["test_accuracy"].is_number());
  auto text = run_cli({"train", "m.yaml", "--epochs", "1"}, d.path(), 120);
  ASSERT_TRUE(exited_with(text, 0));
  EXPECT_THAT(text.out, HasSubstr("epoch 1/1"));
  EXPECT_THAT(text.out, ::testing::Not(HasSubstr("epoch 2/")));
}

TEST(CliTrain, BadTrainingFileIsAConfigError) {
  TempDir d;
  write_file(d / "m.yaml", "model:\n  input: [4]\n  nodes:\n    - {op: linaer, out: 2}\n");
  auto r = run_cli({"train", "m.yaml"}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("m.yaml:4"));
}

TEST(CliTrain, TrainerSweepWithAMissingTrainingFileIsRefused) {
  TempDir d;
  write_file(d / "s.yaml", "space:\n  lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
                           "objective: {name: val_accuracy, direction: maximize}\n"
                           "evaluator:\n  kind: trainer\n  train_file: nowhere.yaml\n");
  auto r = run_cli({"run", "s.yaml", "--storage", db_url(d)}, d.path());
  EXPECT_TRUE(exited_with(r, 2));
  EXPECT_THAT(r.err, HasSubstr("s.yaml:6: evaluator.train_file"));
  EXPECT_FALSE(fs::exists(d / "k.db"));
}

TEST(CliCommands, PbtScheduleFollowsTheBestMembersLineage) {
  TempDir d;
  auto r = run_cli({"run", source_dir() + "/configs/pbt.yaml", "--storage", db_url(d)}, d.path(), 300);
  ASSERT_TRUE(exited_with(r, 0)) << r.err;
  auto s = run_cli({"pbt-schedule", "--storage", db_url(d)}, d.path());
  ASSERT_TRUE(exited_with(s, 0)) << s.err;
  EXPECT_THAT(s.out, HasSubstr("steps 0-"));
  EXPECT_THAT(s.out, HasSubstr("exploit: copied trial"));
  // A study that is not PBT has no schedule: a clear error, not an empty success.
  auto f = run_cli({"run", source_dir() + "/configs/function.yaml", "--storage", db_url(d), "--n-trials", "2"},
                   d.path());
  ASSERT_TRUE(exited_with(f, 0)) << f.err;
  auto none = run_cli({"pbt-schedule", "--storage", db_url(d), "--study", "rosenbrock-pruned"}, d.path());
  EXPECT_FALSE(exited_with(none, 0));
}

}  // namespace
}  // namespace kestrel::testing
