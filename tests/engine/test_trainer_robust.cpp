// Tests of robustness and transfer through the trainer evaluator on a tiny CSV problem: robust accuracy as an
// objective (single and multi-objective) and as a constraint, the reports stored with the trial, per-trial weights,
// and init_from naming another study's trial (with clear errors when it cannot be found).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/runner.hpp"
#include "engine/sweep.hpp"
#include "engine/trainer_evaluator.hpp"
#include "engine/warm_start.hpp"
#include "engine_test_util.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using search::ParamSpec;
using ::testing::HasSubstr;

namespace {

// Two Gaussian blobs in 2-d; the training file evaluates FGSM and PGD at epsilons 0.5 and 1.0 on the validation
// set (the blobs are 3 apart: a perturbation of 1.0 flips a good share of them, 0.5 fewer).
struct Problem {
  TempDir dir;
  fs::path train_file;
  explicit Problem(bool robustness = true, const std::string& extra_training = "") {
    write_blobs_csv(dir.path / "blobs.csv", 160, 0.5, 1.5, 1.0);
    train_file = dir.path / "train.yaml";
    std::ofstream t(train_file);
    t << "model:\n"
         "  input: [2]\n"
         "  nodes:\n"
         "    - {op: linear, out: 8, name: fc1}\n"
         "    - {op: relu}\n"
         "    - {op: linear, out: 2, name: head}\n"
         "data: {dataset: csv, train_path: blobs.csv, validation: 0.25, normalize: false}\n"
         "optimizer: {kind: sgd, lr: 0.1}\n"
         "training: {epochs: 3, batch_size: 16, seed: 1, threads: 1, evaluate_test: false" +
             extra_training + "}\n";
    if (robustness) t << "robustness: {epsilons: [0.5, 1.0], attacks: [fgsm, pgd], steps: 5, set: validation}\n";
  }
};

SearchSpace space() { return SearchSpace({ParamSpec::uniform("lr", 0.05, 0.3, true)}); }

StudyOptions options(const std::string& name, std::vector<search::Objective> objs) {
  StudyOptions o;
  o.name = name;
  o.space = space();
  o.objectives = std::move(objs);
  o.heartbeat_interval = 0;
  return o;
}

RunOptions run(const Problem& p, int64_t n) {
  RunOptions r;
  r.n_trials = n;
  r.runs_dir = (p.dir.path / "runs").string();
  return r;
}

const search::Objective kRobust{"robust_accuracy@1", search::Direction::Maximize};
const search::Objective kClean{"val_accuracy", search::Direction::Maximize};

}  // namespace

TEST(TrainerRobust, RobustAccuracyIsAnObjectiveAndTheReportIsStoredWithTheTrial) {
  Problem p;
  Study s(open_store_in(p.dir), options("r", {kRobust}));
  TrainerEvaluator ev({p.train_file.string()}, {kRobust}, space());
  ev.validate();
  optimize(s, ev, run(p, 1));
  auto t = s.trials().at(0);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  auto metrics = nlohmann::json::parse(t.attrs.at(kAttrMetrics));
  // robust_accuracy@1 is the weaker of the two attacks at epsilon 1.
  double fgsm = metrics.at("robust_accuracy_fgsm_1").get<double>();
  double pgd = metrics.at("robust_accuracy_pgd_1").get<double>();
  EXPECT_DOUBLE_EQ(t.values[0], std::min(fgsm, pgd));
  EXPECT_DOUBLE_EQ(metrics.at("robust_accuracy@1").get<double>(), t.values[0]);
  EXPECT_TRUE(metrics.contains("robust_accuracy@0.5"));
  EXPECT_LE(t.values[0], metrics.at("clean_accuracy").get<double>());
  auto report = nlohmann::json::parse(t.attrs.at("robustness"));
  EXPECT_TRUE(report.contains("confusion"));
  EXPECT_TRUE(nlohmann::json::parse(t.attrs.at("robustness_flags")).is_array());
}

TEST(TrainerRobust, CleanAndRobustAccuracyTogetherGiveAParetoFront) {
  Problem p;
  Study s(open_store_in(p.dir), options("mo", {kClean, kRobust}));
  TrainerEvaluator ev({p.train_file.string()}, {kClean, kRobust}, space());
  optimize(s, ev, run(p, 3));
  auto front = s.pareto_front();
  ASSERT_FALSE(front.empty());
  for (const auto& t : front) ASSERT_EQ(t.values.size(), 2u);
}

TEST(TrainerRobust, RobustAccuracyAsAConstraintDecidesFeasibility) {
  Problem p;
  auto st = open_store_in(p.dir);
  StudyOptions o = options("c", {kClean});
  // Nothing reaches perfect robust accuracy at epsilon 1 on overlapping blobs: every trial is infeasible.
  o.constraints = {parse_constraint("robust_accuracy@1 >= 1.0")};
  Study s(st, o);
  TrainerEvaluatorOptions eo{p.train_file.string()};
  eo.constraint_metrics = {"robust_accuracy@1"};
  TrainerEvaluator ev(eo, {kClean}, space());
  optimize(s, ev, run(p, 2));
  for (const auto& t : s.trials()) {
    ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    auto v = stored_violations(t);
    ASSERT_TRUE(v);
    double robust = nlohmann::json::parse(t.attrs.at(kAttrMetrics)).at("robust_accuracy@1").get<double>();
    EXPECT_DOUBLE_EQ((*v)[0], 1.0 - robust);
    EXPECT_FALSE(is_feasible(t));
  }
  EXPECT_FALSE(s.best_trial());
}

TEST(TrainerRobust, RobustMetricWithoutARobustnessSectionIsRefusedBeforeRunning) {
  Problem p(/*robustness=*/false);
  TrainerEvaluator ev({p.train_file.string()}, {kRobust}, space());
  EXPECT_THAT([&] { ev.validate(); }, ::testing::ThrowsMessage<ConfigError>(HasSubstr("robustness: section")));
  Problem q;
  TrainerEvaluator wrong_eps({q.train_file.string()}, {{"robust_accuracy@0.3", search::Direction::Maximize}}, space());
  EXPECT_THAT([&] { wrong_eps.validate(); }, ::testing::ThrowsMessage<ConfigError>(HasSubstr("robustness.epsilons")));
  EXPECT_THROW(TrainerEvaluator({q.train_file.string()}, {{"robust_acc@1", search::Direction::Maximize}}, space()),
               ConfigError);
}

TEST(TrainerTransfer, InitFromAStudysBestTrialLoadsItsSavedWeights) {
  Problem p(false);
  auto st = open_store_in(p.dir);
  std::string url = "sqlite:///" + (p.dir.path / "k.db").string();
  int64_t best_number = -1;
  {
    Study pre(st, options("pre", {kClean}));
    TrainerEvaluator ev({p.train_file.string()}, {kClean}, space());
    optimize(pre, ev, run(p, 2));
    auto best = pre.best_trial();
    ASSERT_TRUE(best);
    best_number = best->number;
    ASSERT_TRUE(best->attrs.count(kAttrWeights));
    EXPECT_TRUE(fs::exists(best->attrs.at(kAttrWeights)));
  }
  // The fine-tuning file names the study; the evaluator resolves it to the best trial's weights file.
  std::ofstream(p.dir.path / "finetune.yaml")
      << "model:\n  input: [2]\n  nodes:\n    - {op: linear, out: 8, name: fc1}\n    - {op: relu}\n"
         "    - {op: linear, out: 2, name: head}\n"
         "data: {dataset: csv, train_path: blobs.csv, validation: 0.25}\n"
         "optimizer: {kind: sgd, lr: 0.1}\n"
         "training: {epochs: 1, batch_size: 16, seed: 2, threads: 1, evaluate_test: false, freeze: [fc1],\n"
         "           init_from: {study: pre, trial: best}}\n";
  TrainerEvaluatorOptions eo{(p.dir.path / "finetune.yaml").string()};
  eo.storage = url;
  TrainerEvaluator ft(eo, {kClean}, space());
  ft.validate();
  Study fine(st, options("fine", {kClean}));
  optimize(fine, ft, run(p, 1));
  auto t = fine.trials().at(0);
  ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
  auto from = nlohmann::json::parse(t.attrs.at("init_from"));
  EXPECT_EQ(from["study"], "pre");
  EXPECT_EQ(from["trial"].get<int64_t>(), best_number);
  auto transfer = nlohmann::json::parse(t.attrs.at("transfer"));
  EXPECT_EQ(transfer["matched"].size(), 4u);  // fc1 and head, weight and bias
}

TEST(TrainerTransfer, InitFromAMissingStudyTrialOrWeightsIsAClearError) {
  Problem p(false);
  auto st = open_store_in(p.dir);
  std::string url = "sqlite:///" + (p.dir.path / "k.db").string();
  EXPECT_THAT([&] { resolve_trial_weights(TrialRef::from_json({{"study", "nope"}}), url); },
              ::testing::ThrowsMessage<ConfigError>(HasSubstr("no study 'nope'")));
  {
    Study s(st, options("cb", {kClean}));
    auto h = s.ask();
    h.tell(0.5);  // COMPLETE but not run by the trainer: no weights
  }
  EXPECT_THAT([&] { resolve_trial_weights(TrialRef::from_json({{"study", "cb"}, {"trial", 7}}), url); },
              ::testing::ThrowsMessage<ConfigError>(HasSubstr("has no trial 7")));
  EXPECT_THAT([&] { resolve_trial_weights(TrialRef::from_json({{"study", "cb"}, {"trial", "best"}}), url); },
              ::testing::ThrowsMessage<ConfigError>(HasSubstr("no saved weights")));
  EXPECT_THROW(TrialRef::from_json({{"study", "cb"}, {"trial", "first"}}), ConfigError);
}

TEST(TrainerTransfer, EachTrialWritesItsOwnWeightsEvenWhenTheFileNamesOne) {
  Problem p(false, ", save_weights: shared.safetensors");
  Study s(open_store_in(p.dir), options("w", {kClean}));
  TrainerEvaluator ev({p.train_file.string()}, {kClean}, space());
  optimize(s, ev, run(p, 2));
  auto trials = s.trials();
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_NE(trials[0].attrs.at(kAttrWeights), trials[1].attrs.at(kAttrWeights));
  for (const auto& t : trials) EXPECT_TRUE(fs::exists(t.attrs.at(kAttrWeights)));
}
