// Tests of CommandEvaluator with real child processes (tests/engine/scripts/*.sh): metric formats, placeholders,
// environment and params.json, and every way a command can go wrong, each ending in the right state and reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>

#include "common/error.hpp"
#include "engine/command_evaluator.hpp"
#include "engine/runner.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using search::ParamSpec;
using ::testing::HasSubstr;

namespace {

SearchSpace test_space() {
  return SearchSpace({ParamSpec::uniform("x", 0, 1), ParamSpec::integer("n", 1, 4),
                      ParamSpec::categorical("opt", {std::string("sgd"), std::string("a b'c")})});
}

struct Fixture {
  TempDir dir;
  std::unique_ptr<Study> study;

  explicit Fixture(const std::string& pruner = "none", nlohmann::json pruner_params = nlohmann::json::object()) {
    StudyOptions o;
    o.name = "cmd";
    o.space = test_space();
    o.objectives = {search::Objective{"loss", search::Direction::Minimize}};
    o.pruner = pruner;
    o.pruner_params = std::move(pruner_params);
    o.heartbeat_interval = 0;
    o.seed = 3;
    study = std::make_unique<Study>(open_store_in(dir), o);
  }

  // Runs one trial of `spec` directly through the evaluator; returns its stored record.
  Trial run(CommandSpec spec, const std::atomic<bool>* stop = nullptr, fs::path* trial_dir = nullptr) {
    CommandEvaluator ev(std::move(spec), study->options().objectives, study->options().space);
    auto h = study->ask();
    EvalContext ctx;
    fs::path td = dir.path / ("trial_" + std::to_string(h.number()));
    fs::create_directories(td);
    ctx.trial_dir = td.string();
    ctx.stop = stop;
    ev.evaluate(h, ctx);
    EXPECT_TRUE(h.told());
    if (trial_dir) *trial_dir = td;
    return study->store().trial(h.id());
  }
};

CommandSpec cmd(std::vector<std::string> argv) {
  CommandSpec s;
  s.argv = std::move(argv);
  s.grace_s = 0.5;
  return s;
}

std::vector<double> reports_of(const Trial& t, const std::string& metric) {
  std::vector<double> out;
  for (const auto& r : t.reports)
    if (r.metric == metric) out.push_back(r.value);
  return out;
}

}  // namespace

TEST(CommandEvaluator, KeyValueLinesAreReportedPerStepAndLastValueIsFinal) {
  Fixture f;
  Trial t = f.run(cmd({script("steps.sh"), "1"}));
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  ASSERT_EQ(t.values.size(), 1u);
  EXPECT_DOUBLE_EQ(t.values[0], 1.0);
  EXPECT_EQ(reports_of(t, "loss"), (std::vector<double>{3, 2, 1}));
  EXPECT_EQ(t.report_at("acc", 1), 0.5);
}

TEST(CommandEvaluator, JsonLinesWithFinalMarkerGiveTheFinalValue) {
  Fixture f;
  auto spec = cmd({script("json.sh")});
  spec.format = MetricFormat::JsonLines;
  Trial t = f.run(spec);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  EXPECT_DOUBLE_EQ(t.values[0], 0.25);
  EXPECT_EQ(reports_of(t, "loss"), (std::vector<double>{0.5, 0.4}));  // the final line is not a step
  EXPECT_EQ(t.report_at("acc", 1), 0.8);
}

TEST(CommandEvaluator, RegexFormatReadsFreeTextWithAConfiguredStepKey) {
  Fixture f;
  auto spec = cmd({script("regex.sh")});
  spec.format = MetricFormat::Regex;
  spec.regex = R"((epoch|loss):? ([0-9.]+))";
  spec.step_key = "epoch";
  Trial t = f.run(spec);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  EXPECT_DOUBLE_EQ(t.values[0], 0.3);
  EXPECT_EQ(t.report_at("loss", 0), 0.5);
  EXPECT_EQ(t.report_at("loss", 1), 0.3);
}

TEST(CommandEvaluator, RegexWithoutTwoGroupsIsRefused) {
  auto spec = cmd({"/bin/true"});
  spec.format = MetricFormat::Regex;
  spec.regex = "loss=[0-9]+";
  EXPECT_THROW(CommandEvaluator(spec, {search::Objective{"loss"}}), ConfigError);
  spec.regex = "(unclosed";
  EXPECT_THROW(CommandEvaluator(spec, {search::Objective{"loss"}}), ConfigError);
}

TEST(CommandEvaluator, PlaceholdersEnvironmentAndParamsJsonCarryTheConfiguration) {
  Fixture f;
  fs::path td;
  Trial t = f.run(cmd({script("env_args.sh"), "--x={x}", "{n}", "{opt}", "{trial}", "{trial_dir}", "{budget}",
                       "{\"literal\": 1}", "{not_a_param"}),
                  nullptr, &td);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  const auto& c = t.config;
  std::string x = search::to_string(c.at("x"));
  EXPECT_DOUBLE_EQ(t.values[0], search::as_double(c.at("x")));  // the script echoes $KESTREL_PARAM_X back

  std::string args = read_file(td / "args");
  std::string expected = "--x=" + x + "\n" + search::to_string(c.at("n")) + "\n" + search::to_string(c.at("opt")) +
                         "\n" + std::to_string(t.number) + "\n" + td.string() + "\n\n{\"literal\": 1}\n{not_a_param\n";
  EXPECT_EQ(args, expected);

  std::string env = read_file(td / "env");
  EXPECT_THAT(env, HasSubstr("KESTREL_PARAM_X=" + x + "\n"));
  EXPECT_THAT(env, HasSubstr("KESTREL_PARAM_N=" + search::to_string(c.at("n")) + "\n"));
  EXPECT_THAT(env, HasSubstr("KESTREL_PARAM_OPT=" + search::to_string(c.at("opt")) + "\n"));
  EXPECT_THAT(env, HasSubstr("KESTREL_TRIAL_NUMBER=" + std::to_string(t.number) + "\n"));
  EXPECT_THAT(env, HasSubstr("KESTREL_TRIAL_DIR=" + td.string() + "\n"));

  auto pj = nlohmann::json::parse(read_file(td / "params.json"));
  EXPECT_EQ(search::config_from_json(pj).size(), c.size());
  for (const auto& [k, v] : c) EXPECT_TRUE(search::values_equal(search::config_from_json(pj).at(k), v)) << k;
  EXPECT_THAT(read_file(td / "stdout.log"), HasSubstr("loss=" + x));
}

TEST(CommandEvaluator, ShellModeQuotesPlaceholderValues) {
  Fixture f;
  // Ask until the categorical value with a space and a quote comes up (seeded: deterministic).
  CommandSpec spec = cmd({"printf '%s\\n' {opt} > \"$KESTREL_TRIAL_DIR/opt\"; echo loss=1"});
  spec.shell = true;
  bool saw_tricky = false;
  for (int i = 0; i < 20 && !saw_tricky; ++i) {
    fs::path td;
    Trial t = f.run(spec, nullptr, &td);
    ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    std::string opt = search::to_string(t.config.at("opt"));
    EXPECT_EQ(read_file(td / "opt"), opt + "\n");
    saw_tricky = opt == "a b'c";
  }
  EXPECT_TRUE(saw_tricky);
}

TEST(CommandEvaluator, CrashFailsWithTheSignal) {
  Fixture f;
  Trial t = f.run(cmd({script("crash.sh")}));
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("killed by signal 11 (SIGSEGV)"));
}

TEST(CommandEvaluator, NonZeroExitFailsWithCodeAndStderrTail) {
  Fixture f;
  fs::path td;
  Trial t = f.run(cmd({script("exit3.sh")}), nullptr, &td);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("exit code 3"));
  EXPECT_THAT(t.fail_reason, HasSubstr("boom: out of memory"));
  EXPECT_EQ(read_file(td / "stderr.log"), "boom: out of memory\n");
}

TEST(CommandEvaluator, SilentCommandFailsWithNoObjectiveMetric) {
  Fixture f;
  Trial t = f.run(cmd({script("silent.sh")}));
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("no objective metric 'loss' printed (0 lines"));
}

TEST(CommandEvaluator, NanFinalValueFails) {
  Fixture f;
  Trial t = f.run(cmd({script("nan.sh")}));
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("objective 'loss' is NaN (step 1)"));
  EXPECT_EQ(reports_of(t, "loss"), (std::vector<double>{0.5}));  // the finite step was still stored
}

TEST(CommandEvaluator, GarbageLinesAreCountedInTheReason) {
  Fixture f;
  Trial t = f.run(cmd({script("garbage.sh")}));
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("(3 lines on stdout, 3 not understood as metrics)"));
}

TEST(CommandEvaluator, HangingCommandTimesOutAndIsKilled) {
  Fixture f;
  auto spec = cmd({script("hang.sh")});
  spec.timeout_s = 0.5;
  fs::path td;
  Trial t = f.run(spec, nullptr, &td);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_EQ(t.fail_reason, "timeout after 0.5 s");
  EXPECT_EQ(reports_of(t, "loss"), (std::vector<double>{1}));
  pid_t pid = read_pid(td / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone_eventually(pid));
  EXPECT_TRUE(group_gone_eventually(pid));  // the whole process group is gone (its sleep children too)
}

TEST(CommandEvaluator, CommandIgnoringSigtermIsKilledAfterTheGracePeriod) {
  Fixture f;
  auto spec = cmd({script("ignore_term.sh")});
  spec.timeout_s = 0.3;
  spec.grace_s = 0.2;
  fs::path td;
  Trial t = f.run(spec, nullptr, &td);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("timeout"));
  pid_t pid = read_pid(td / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone_eventually(pid));
  EXPECT_TRUE(group_gone_eventually(pid));
}

TEST(CommandEvaluator, PrunedCommandIsStoppedAtThePrunedStep) {
  Fixture f("threshold", {{"upper", 5.0}});
  fs::path td;
  Trial t = f.run(cmd({script("slow_steps.sh")}), nullptr, &td);
  EXPECT_EQ(t.state, TrialState::Pruned);
  EXPECT_EQ(t.fail_reason, "pruned at step 3");
  // Steps 0..3 were stored before the decision; nothing after (the script would run 1000 steps).
  EXPECT_EQ(reports_of(t, "loss"), (std::vector<double>{1, 1, 1, 10}));
  pid_t pid = read_pid(td / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone_eventually(pid));
}

TEST(CommandEvaluator, SweepStopEndsTheCommand) {
  Fixture f;
  std::atomic<bool> stop{true};
  fs::path td;
  Trial t = f.run(cmd({script("hang.sh")}), &stop, &td);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("stopped"));
}

TEST(CommandEvaluator, BackgroundChildDoesNotHoldTheTrialAndIsKilled) {
  Fixture f;
  fs::path td;
  Trial t = f.run(cmd({script("background.sh")}), nullptr, &td);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  pid_t bg = read_pid(td / "bgpid");
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(process_gone_eventually(bg));
}

TEST(CommandEvaluator, MissingCommandIsRefusedBeforeRunningAndFailsATrial) {
  Fixture f;
  auto spec = cmd({"/nonexistent/kestrel-train"});
  CommandEvaluator ev(spec, f.study->options().objectives, test_space());
  try {
    ev.validate(test_space());
    FAIL() << "validate accepted a missing command";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("command not found"));
  }
  CommandEvaluator by_name(cmd({"kestrel-no-such-command-xyz"}), f.study->options().objectives);
  EXPECT_THROW(by_name.validate(test_space()), ConfigError);
  Trial t = f.run(spec);
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("command not found"));
}

TEST(CommandEvaluator, NonExecutableCommandIsRefused) {
  Fixture f;
  fs::path copy = f.dir.path / "not_exec.sh";
  fs::copy_file(script("steps.sh"), copy);
  ::chmod(copy.c_str(), 0644);
  CommandEvaluator ev(cmd({copy.string()}), f.study->options().objectives, test_space());
  try {
    ev.validate(test_space());
    FAIL() << "validate accepted a non-executable command";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not executable"));
  }
  Trial t = f.run(cmd({copy.string()}));
  EXPECT_EQ(t.state, TrialState::Failed);
  EXPECT_THAT(t.fail_reason, HasSubstr("not executable"));
}

TEST(CommandEvaluator, UnknownPlaceholderIsRefusedByValidate) {
  Fixture f;
  CommandEvaluator ev(cmd({script("steps.sh"), "--lr={lr}"}), f.study->options().objectives, test_space());
  try {
    ev.validate(test_space());
    FAIL() << "validate accepted {lr}";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("{lr}"));
  }
}

TEST(CommandEvaluator, RunnerRunsCommandsInParallelEachFailingAlone) {
  Fixture f;
  // Odd trial numbers crash, even ones succeed: the sweep goes on to 4 COMPLETE trials.
  auto spec = cmd({"/bin/sh", "-c", "if [ $(({trial} % 2)) -eq 1 ]; then kill -SEGV $$; fi; echo loss={x}"});
  CommandEvaluator ev(spec, f.study->options().objectives, f.study->options().space);
  RunOptions ro;
  ro.n_trials = 4;
  ro.n_jobs = 2;
  ro.runs_dir = (f.dir.path / "runs").string();
  RunSummary s = optimize(*f.study, ev, ro);
  EXPECT_EQ(s.stop_reason, "n_trials");
  EXPECT_EQ(s.completed, 4);
  EXPECT_GE(s.failed, 1);
  for (const auto& t : f.study->trials()) {
    if (t.number % 2 == 1) {
      EXPECT_EQ(t.state, TrialState::Failed);
      EXPECT_THAT(t.fail_reason, HasSubstr("SIGSEGV"));
    } else {
      ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
      EXPECT_DOUBLE_EQ(t.values[0], search::as_double(t.config.at("x")));
      EXPECT_TRUE(fs::exists(f.dir.path / "runs" / "cmd" / ("trial_" + std::to_string(t.number)) / "stdout.log"));
    }
  }
}
