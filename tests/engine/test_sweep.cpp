// Tests of the sweep-file parser: defaults, every section, shorthands, and the file:line messages for bad input.
// The end-to-end behaviour through the `kestrel` binary is tested in tests/cli.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "engine/sweep.hpp"

namespace kestrel::engine {
namespace {

using ::testing::HasSubstr;
using search::ParamKind;

const char* kMinimal = R"(space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
evaluator: {kind: function, function: branin}
)";

std::string error_of(const std::string& text, const std::string& file = "s.yaml") {
  try {
    parse_sweep(text, file, "/tmp");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(EditDistance, CountsInsertionsDeletionsSubstitutionsAndTranspositions) {
  EXPECT_EQ(edit_distance("n_trail", "n_trials"), 2u);  // "ai" swapped, "s" missing
  EXPECT_EQ(edit_distance("flaot", "float"), 1u);
  EXPECT_EQ(edit_distance("n_trial", "n_trials"), 1u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(ClosestMatch, SuggestsOnlyLikelyTypos) {
  std::vector<std::string> keys = {"n_trials", "timeout", "target", "max_failed"};
  EXPECT_EQ(closest_match("n_trail", keys), "n_trials");
  EXPECT_EQ(closest_match("timout", keys), "timeout");
  EXPECT_EQ(closest_match("colour", keys), "");
}

TEST(ParseSweep, MinimalFileGetsDocumentedDefaults) {
  SweepSpec s = parse_sweep(kMinimal, "runs/my-sweep.yaml", "/tmp");
  EXPECT_EQ(s.study, "my-sweep");
  EXPECT_EQ(s.storage, "");
  EXPECT_EQ(s.seed, 0u);
  EXPECT_EQ(s.tuner, "random");
  EXPECT_EQ(s.pruner, "none");
  ASSERT_EQ(s.objectives.size(), 1u);
  EXPECT_EQ(s.objectives[0].name, "value");
  EXPECT_EQ(s.objectives[0].direction, search::Direction::Minimize);
  EXPECT_EQ(s.budget.n_trials, 0);
  EXPECT_EQ(s.budget.timeout_s, 0.0);
  EXPECT_FALSE(s.budget.target.has_value());
  EXPECT_EQ(s.n_jobs, 1);
  EXPECT_EQ(s.retry_failed, 0);
  EXPECT_EQ(s.heartbeat_s, 5.0);
  EXPECT_EQ(s.runs_dir, "kestrel_runs");
  EXPECT_EQ(s.space.size(), 2u);
}

TEST(ParseSweep, ReadsEveryParameterKindAndCondition) {
  SweepSpec s = parse_sweep(R"(study: full
seed: 9
space:
  lr: {type: float, low: 1e-5, high: 1e-1, log: true}
  layers: {type: int, low: 1, high: 4}
  units: {type: int, low: 16, high: 128, step: 16}
  opt: {type: categorical, choices: [sgd, adam]}
  momentum: {type: float, low: 0.0, high: 0.99, condition: {opt: [sgd]}}
  batch: 64
  act: [relu, tanh]
  flag: {type: fixed, value: true}
evaluator: {kind: command, command: [echo, "{lr}"]}
)",
                            "f.yaml", "/tmp");
  const auto& sp = s.space;
  EXPECT_EQ(sp.at("lr").kind, ParamKind::Float);
  EXPECT_TRUE(sp.at("lr").log);
  EXPECT_DOUBLE_EQ(sp.at("lr").low, 1e-5);
  EXPECT_EQ(sp.at("layers").kind, ParamKind::Int);
  ASSERT_TRUE(sp.at("units").step.has_value());
  EXPECT_EQ(*sp.at("units").step, 16.0);
  EXPECT_EQ(sp.at("opt").choices.size(), 2u);
  ASSERT_TRUE(sp.at("momentum").condition.has_value());
  EXPECT_EQ(sp.at("momentum").condition->parent, "opt");
  EXPECT_EQ(std::get<std::string>(sp.at("momentum").condition->values[0]), "sgd");
  EXPECT_EQ(sp.at("batch").kind, ParamKind::Fixed);
  EXPECT_EQ(std::get<int64_t>(sp.at("batch").fixed), 64);
  EXPECT_EQ(sp.at("act").kind, ParamKind::Categorical);
  EXPECT_EQ(std::get<bool>(sp.at("flag").fixed), true);
  EXPECT_EQ(s.seed, 9u);
}

TEST(ParseSweep, QuotedNumbersStayStrings) {
  SweepSpec s = parse_sweep(R"(space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
  tag: {type: categorical, choices: ["1", 2]}
evaluator: {kind: function, function: branin}
)",
                            "q.yaml", "/tmp");
  const auto& c = s.space.at("tag").choices;
  EXPECT_TRUE(std::holds_alternative<std::string>(c[0]));
  EXPECT_TRUE(std::holds_alternative<int64_t>(c[1]));
}

TEST(ParseSweep, ReadsBudgetDurationsHeartbeatAndAlgorithms) {
  SweepSpec s = parse_sweep(R"(space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
objectives:
  - {name: loss, direction: minimize}
  - {name: acc, direction: max}
tuner: {kind: random}
pruner: {kind: median, n_startup_trials: 3}
evaluator: {kind: function, function: branin}
budget: {n_trials: 30, timeout: 15m, max_failed: 4}
n_jobs: 3
retry_failed: 2
heartbeat: {interval: 500ms, stale_after: 2s}
runs_dir: out
)",
                            "b.yaml", "/tmp");
  EXPECT_EQ(s.budget.n_trials, 30);
  EXPECT_DOUBLE_EQ(s.budget.timeout_s, 900.0);
  EXPECT_EQ(s.budget.max_failed, 4);
  ASSERT_EQ(s.objectives.size(), 2u);
  EXPECT_EQ(s.objectives[1].direction, search::Direction::Maximize);
  EXPECT_EQ(s.pruner, "median");
  EXPECT_EQ(s.pruner_params["n_startup_trials"], 3);
  EXPECT_EQ(s.n_jobs, 3);
  EXPECT_EQ(s.retry_failed, 2);
  EXPECT_DOUBLE_EQ(s.heartbeat_s, 0.5);
  EXPECT_DOUBLE_EQ(s.stale_after_s, 2.0);
  EXPECT_EQ(s.runs_dir, "out");
  auto ro = s.run_options();
  EXPECT_EQ(ro.n_trials, 30);
  EXPECT_EQ(ro.n_jobs, 3);
  auto so = s.study_options();
  EXPECT_EQ(so.retry_failed, 2);
  EXPECT_EQ(so.study_attrs.at(kSweepTextAttr), s.text);
}

TEST(ParseSweep, CommandEvaluatorResolvesItsProgramNextToTheSweepFile) {
  SweepSpec s = parse_sweep(R"(space:
  x: {type: float, low: 0, high: 1}
objective: {name: loss}
evaluator:
  kind: command
  command: [scripts/train.sh, --x, "{x}", "{trial_dir}", "{sweep_dir}/data"]
  env: {MODE: fast}
  metrics: json
  timeout: 2m
  grace: 3
)",
                            "c.yaml", "/work/sweeps");
  const auto& c = s.evaluator.command;
  ASSERT_EQ(c.argv.size(), 5u);
  EXPECT_EQ(c.argv[0], "/work/sweeps/scripts/train.sh");
  EXPECT_EQ(c.argv[2], "{x}");
  EXPECT_EQ(c.argv[4], "/work/sweeps/data");
  EXPECT_EQ(c.env.at("MODE"), "fast");
  EXPECT_EQ(c.format, MetricFormat::JsonLines);
  EXPECT_DOUBLE_EQ(c.timeout_s, 120.0);
  EXPECT_DOUBLE_EQ(c.grace_s, 3.0);
}

TEST(ParseSweep, FunctionEvaluatorWithoutSpaceUsesTheFunctionsBox) {
  SweepSpec s = parse_sweep("evaluator: {kind: function, function: hartmann6}\n", "h.yaml", "/tmp");
  EXPECT_EQ(s.space.size(), 6u);
  EXPECT_TRUE(s.space.index_of("x5").has_value());
}

TEST(ParseSweep, NasSectionAddsOneParameterPerArchitectureDecision) {
  SweepSpec s = parse_sweep(R"(nas:
  space: {type: cell}
space:
  lr: {type: float, low: 1e-4, high: 1e-2, log: true}
tuner: {kind: nas_evolution, population: 10}
evaluator: {kind: command, command: [echo, "{arch}", "{lr}"]}
)",
                            "n.yaml", "/tmp");
  EXPECT_EQ(s.space.size(), 7u);  // six cell edges + lr
  EXPECT_TRUE(s.space.index_of("lr").has_value());
  EXPECT_EQ(s.tuner_params["space"], s.nas_space);
  EXPECT_THAT(error_of("space:\n  x: {type: float, low: 0, high: 1}\ntuner: nas_bo\nevaluator: {kind: command, "
                       "command: [echo]}\n"),
              HasSubstr("needs a `nas:` section"));
}

TEST(ParseSweepErrors, MalformedYamlHasLineAndColumn) {
  std::string e = error_of("space:\n  x: {type: float, low: 0\nevaluator: {}\n");
  EXPECT_THAT(e, ::testing::MatchesRegex("s\\.yaml:[0-9]+:[0-9]+: malformed YAML.*"));
}

TEST(ParseSweepErrors, UnknownKeysAtEveryLevelGetSuggestions) {
  std::string e = error_of(R"(studdy: x
space:
  x0: {type: float, lwo: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
evaluator: {kind: function, function: branin, fucntion: x}
budget: {n_trail: 3}
heartbeat: {intreval: 1}
)");
  EXPECT_THAT(e, HasSubstr("s.yaml:1: unknown key 'studdy' (did you mean 'study'?)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:3: unknown key 'lwo' in space.x0 (did you mean 'low'?)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:5: unknown key 'fucntion' in evaluator (did you mean 'function'?)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:6: unknown key 'n_trail' in budget (did you mean 'n_trials'?)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:7: unknown key 'intreval' in heartbeat (did you mean 'interval'?)"));
}

TEST(ParseSweepErrors, UnrelatedUnknownKeyListsTheValidOnes) {
  std::string e = error_of(std::string(kMinimal) + "budget: {colour: 3}\n");
  EXPECT_THAT(e, HasSubstr("unknown key 'colour' in budget (expected one of: n_trials, timeout, target, max_failed)"));
}

TEST(ParseSweepErrors, WrongTypesNameTheKey) {
  std::string e = error_of(std::string(kMinimal) + "budget: {n_trials: 2.5, timeout: soon}\nn_jobs: [1]\nseed: -1\n");
  EXPECT_THAT(e, HasSubstr("s.yaml:5: budget.n_trials: expected an integer, got '2.5'"));
  EXPECT_THAT(e, HasSubstr("s.yaml:5: budget.timeout: expected a duration"));
  EXPECT_THAT(e, HasSubstr("s.yaml:6: n_jobs: expected an integer, got a list"));
  EXPECT_THAT(e, HasSubstr("s.yaml:7: seed: must be >= 0"));
}

TEST(ParseSweepErrors, ImpossibleRangesAreRefused) {
  std::string e = error_of(R"(space:
  a: {type: float, low: 1, high: 1}
  b: {type: int, low: 1.5, high: 4}
  c: {type: float, low: 0, high: 1, log: true}
  d: {type: int, low: 0, high: 10, step: 3}
  e: {type: categorical, choices: []}
  f: {type: categorical, choices: [x, x]}
evaluator: {kind: function, function: branin}
)");
  EXPECT_THAT(e, HasSubstr("s.yaml:2: space.a: impossible range: low (1) must be < high (1)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:3: space.b.low: an int parameter needs whole bounds"));
  EXPECT_THAT(e, HasSubstr("s.yaml:4: space.c: a log scale needs low > 0"));
  EXPECT_THAT(e, HasSubstr("s.yaml:6: space.e.choices: needs at least one choice"));
}

TEST(ParseSweepErrors, StepThatDoesNotDivideTheRangeNamesTheParameterLine) {
  std::string e = error_of(R"(space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
  d: {type: int, low: 0, high: 10, step: 3}
evaluator: {kind: function, function: branin}
)");
  EXPECT_THAT(e, HasSubstr("s.yaml:4: space.d: step 3 does not divide the range"));
}

TEST(ParseSweepErrors, ConditionOnUnknownParentSuggestsOne) {
  std::string e = error_of(R"(space:
  x0: {type: float, low: -5, high: 10}
  x1: {type: float, low: 0, high: 15}
  opt: [sgd, adam]
  momentum: {type: float, low: 0, high: 1, condition: {optim: [sgd]}}
evaluator: {kind: function, function: branin}
)");
  EXPECT_THAT(e, HasSubstr("s.yaml:5: space.momentum.condition: unknown parameter 'optim' (did you mean 'opt'?)"));
}

TEST(ParseSweepErrors, UnknownKindsAreRefusedWithSuggestions) {
  std::string e = error_of("space:\n  x: {type: flaot, low: 0, high: 1}\nevaluator: {kind: comand}\n");
  EXPECT_THAT(e, HasSubstr("s.yaml:2: space.x.type: unknown type 'flaot' (did you mean 'float'?)"));
  EXPECT_THAT(e, HasSubstr("s.yaml:3: evaluator.kind: unknown kind 'comand' (did you mean 'command'?)"));
}

TEST(ParseSweepErrors, UnknownTunerOrFunctionIsRefused) {
  std::string t = error_of(std::string(kMinimal) + "tuner: randm\n");
  EXPECT_THAT(t, HasSubstr("s.yaml:5: tuner:"));
  std::string f = error_of("space:\n  x0: {type: float, low: 0, high: 1}\nevaluator: {kind: function, function: branni}\n");
  EXPECT_THAT(f, HasSubstr("s.yaml:3: evaluator.function:"));
  EXPECT_THAT(f, HasSubstr("did you mean 'branin'?"));
}

TEST(ParseSweepErrors, MissingSectionsAreNamed) {
  std::string e = error_of("study: x\n");
  EXPECT_THAT(e, HasSubstr("missing 'space'"));
  EXPECT_THAT(e, HasSubstr("missing 'evaluator'"));
  EXPECT_THAT(error_of("- a\n- b\n"), HasSubstr("a sweep file is a mapping"));
}

TEST(ParseSweepErrors, HeartbeatStaleAfterMustExceedTheInterval) {
  std::string e = error_of(std::string(kMinimal) + "heartbeat: {interval: 2, stale_after: 1}\n");
  EXPECT_THAT(e, HasSubstr("heartbeat.stale_after: must be longer than the interval"));
}

TEST(CheckEvaluator, RefusesMissingAndNonExecutableCommands) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kestrel-sweep-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "plain.sh") << "#!/bin/sh\necho loss=1\n";
  }
  fs::permissions(dir / "plain.sh", fs::perms::owner_read | fs::perms::owner_write);
  auto sweep = [&](const std::string& prog) {
    return parse_sweep("space:\n  x: {type: float, low: 0, high: 1}\nevaluator:\n  kind: command\n  command: [" + prog +
                           ", \"{x}\"]\n",
                       "c.yaml", dir.string());
  };
  try {
    check_evaluator(sweep("./missing.sh"));
    ADD_FAILURE() << "a missing command was accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("c.yaml:5: evaluator.command"));
  }
  try {
    check_evaluator(sweep("./plain.sh"));
    ADD_FAILURE() << "a non-executable command was accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not executable"));
  }
  fs::permissions(dir / "plain.sh", fs::perms::owner_all);
  EXPECT_NO_THROW(check_evaluator(sweep("./plain.sh")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kestrel::engine
