// Tests of TrainerEvaluator on a tiny CSV problem: parameters reach the TrainSpec (placeholders, paths, shorthands,
// budget), epochs are reported, a pruner stops training, bad parameters and unknown metrics are refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "common/error.hpp"
#include "engine/runner.hpp"
#include "engine/trainer_evaluator.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using search::ParamSpec;
using ::testing::HasSubstr;

namespace {

// Two Gaussian blobs in 2-d (linearly separable) and a training file with a ${hidden} placeholder.
struct Problem {
  TempDir dir;
  fs::path train_file;
  Problem() {
    write_blobs_csv(dir.path / "blobs.csv", 160, 0.5, 1.5, 1.0);
    train_file = dir.path / "train.yaml";
    std::ofstream t(train_file);
    t << "model:\n"
         "  input: [2]\n"
         "  nodes:\n"
         "    - {op: linear, out: ${hidden}}\n"
         "    - {op: relu}\n"
         "    - {op: linear, out: 2}\n"
         "data: {dataset: csv, train_path: blobs.csv, validation: 0.25}\n"
         "optimizer: {kind: sgd, lr: 0.1}\n"
         "training: {epochs: 3, batch_size: 16, seed: 1, threads: 1, evaluate_test: false}\n";
  }
};

SearchSpace space() {
  return SearchSpace({ParamSpec::integer("hidden", 2, 8), ParamSpec::uniform("lr", 0.01, 0.3, true),
                      ParamSpec::integer("training.batch_size", 8, 32, false, 8)});
}

StudyOptions study_options(const std::string& pruner = "none", nlohmann::json pp = nlohmann::json::object()) {
  StudyOptions o;
  o.name = "tr";
  o.space = space();
  o.objectives = {search::Objective{"val_accuracy", search::Direction::Maximize}};
  o.pruner = pruner;
  o.pruner_params = std::move(pp);
  o.heartbeat_interval = 0;
  return o;
}

}  // namespace

TEST(TrainerEvaluator, ParametersReachTheTrainSpec) {
  Problem p;
  TrainerEvaluator ev({p.train_file.string()}, study_options().objectives, space());
  Config c{{"hidden", int64_t{5}}, {"lr", 0.05}, {"training.batch_size", int64_t{24}}};
  auto spec = ev.spec_for(c, 2.0);
  EXPECT_FLOAT_EQ(spec.lr, 0.05f);
  EXPECT_EQ(spec.batch_size, 24);
  EXPECT_EQ(spec.epochs, 2);  // the budget
  EXPECT_EQ(spec.model.param_count(), 2 * 5 + 5 + 5 * 2 + 2);
}

TEST(TrainerEvaluator, TrainsReportsEveryEpochAndTellsTheMetric) {
  Problem p;
  Study s(open_store_in(p.dir), study_options());
  TrainerEvaluator ev({p.train_file.string()}, s.options().objectives, s.options().space);
  ev.validate();
  RunOptions ro;
  ro.n_trials = 2;
  ro.runs_dir = (p.dir.path / "runs").string();
  auto r = optimize(s, ev, ro);
  EXPECT_EQ(r.completed, 2);
  for (const auto& t : s.trials()) {
    ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    EXPECT_GT(t.values[0], 0.8);  // separable blobs
    EXPECT_LE(t.values[0], 1.0);
    for (int epoch = 1; epoch <= 3; ++epoch) {
      EXPECT_TRUE(t.report_at("val_accuracy", epoch)) << epoch;
      EXPECT_TRUE(t.report_at("train_loss", epoch)) << epoch;
    }
    EXPECT_DOUBLE_EQ(*t.report_at("val_accuracy", 3), t.values[0]);  // no early stopping: the last epoch
  }
}

TEST(TrainerEvaluator, PrunerStopsTrainingAfterTheEpoch) {
  Problem p;
  // Accuracy is at most 1, so a lower threshold of 2 prunes at the first report.
  Study s(open_store_in(p.dir), study_options("threshold", {{"lower", 2.0}}));
  TrainerEvaluator ev({p.train_file.string()}, s.options().objectives, s.options().space);
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  EXPECT_EQ(t.state, TrialState::Pruned);
  EXPECT_EQ(t.fail_reason, "pruned at epoch 1");
  EXPECT_FALSE(t.report_at("val_accuracy", 2));
}

TEST(TrainerEvaluator, TheLastEpochIsNeverPruned) {
  Problem p;
  // The pruner of the test above prunes every report; with one epoch that report is the last, and a finished
  // training completes with its value instead of being thrown away.
  Study s(open_store_in(p.dir), study_options("threshold", {{"lower", 2.0}}));
  TrainerEvaluatorOptions o{p.train_file.string()};
  o.settings = {{"training", {{"epochs", 1}}}};
  TrainerEvaluator ev(o, s.options().objectives, s.options().space);
  auto h = s.ask();
  ev.evaluate(h, EvalContext{});
  auto t = s.store().trial(h.id());
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  EXPECT_DOUBLE_EQ(*t.report_at("val_accuracy", 1), t.values[0]);
}

TEST(TrainerEvaluator, ParameterThatLandsNowhereIsRefusedByValidate) {
  Problem p;
  SearchSpace sp({ParamSpec::uniform("dropout_rate", 0.0, 0.5)});
  TrainerEvaluator ev({p.train_file.string()}, study_options().objectives, sp);
  try {
    ev.validate();
    FAIL() << "validate accepted a parameter with no destination";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("dropout_rate"));
  }
}

TEST(TrainerEvaluator, BadValueFailsTheTrialWithTheTrainersMessage) {
  Problem p;
  StudyOptions o = study_options();
  o.space = SearchSpace({ParamSpec::integer("hidden", 2, 8), ParamSpec::categorical("optimizer", {std::string("sgd"),
                                                                                             std::string("adamm")})});
  Study s(open_store_in(p.dir), o);
  TrainerEvaluator ev({p.train_file.string()}, o.objectives, o.space);
  bool saw_bad = false;
  for (int i = 0; i < 12 && !saw_bad; ++i) {
    auto h = s.ask();
    ev.evaluate(h, EvalContext{});
    auto t = s.store().trial(h.id());
    if (std::get<std::string>(t.config.at("optimizer")) == "adamm") {
      saw_bad = true;
      EXPECT_EQ(t.state, TrialState::Failed);
      EXPECT_THAT(t.fail_reason, HasSubstr("adamm"));
    } else {
      EXPECT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    }
  }
  EXPECT_TRUE(saw_bad);
}

TEST(TrainerEvaluator, UnknownObjectiveMetricIsRefused) {
  Problem p;
  EXPECT_THROW(TrainerEvaluator({p.train_file.string()}, {search::Objective{"f1_score"}}, space()), ConfigError);
  EXPECT_THROW(TrainerEvaluator({(p.dir.path / "missing.yaml").string()}, {search::Objective{"val_loss"}}, space()),
               ConfigError);
}
