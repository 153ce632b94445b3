// The checkpoint lifecycle end to end through the runner: ASHA sweeps of a checkpointing command
// (scripts/ckpt_steps.sh) and of the trainer evaluator: restores, corrupt parents, retention and exact continuation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "common/error.hpp"
#include "engine/checkpoints.hpp"
#include "engine/command_evaluator.hpp"
#include "engine/runner.hpp"
#include "engine/sweep.hpp"
#include "engine/trainer_evaluator.hpp"
#include "engine_test_util.hpp"
#include "trainer/train.hpp"
#include "tuners/asha.hpp"
#include "tuners/multifidelity.hpp"

using namespace kestrel;
using namespace kestrel::engine;
using namespace kestrel::engine::testing;
using search::ParamSpec;
using ::testing::HasSubstr;

namespace {

// ASHA with rungs at budgets 1, 3 and 9 (eta 3).
StudyOptions asha_options(const SearchSpace& space, const std::string& metric, search::Direction dir) {
  StudyOptions o;
  o.name = "ck";
  o.space = space;
  o.objectives = {search::Objective{metric, dir}};
  o.tuner = "asha";
  o.tuner_params = {{"min_resource", 1}, {"max_resource", 9}, {"eta", 3}};
  o.seed = 7;
  o.heartbeat_interval = 0;
  return o;
}

StudyOptions script_options() {
  return asha_options(SearchSpace({ParamSpec::uniform("x", 0.0, 1.0)}), "loss", search::Direction::Minimize);
}

CommandEvaluator script_evaluator() {
  CommandSpec c;
  c.argv = {script("ckpt_steps.sh"), "{x}", "{checkpoint_dir}", "{restore_from}"};
  return CommandEvaluator(c, script_options().objectives, script_options().space);
}

std::optional<int64_t> int_attr(const Trial& t, const std::string& key) {
  auto it = t.attrs.find(key);
  if (it == t.attrs.end()) return std::nullopt;
  return std::stoll(it->second);
}

fs::path trial_dir(const fs::path& runs, int64_t n) { return runs / "ck" / ("trial_" + std::to_string(n)); }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

TEST(CheckpointLifecycle, PromotionsContinueFromTheirParentsCheckpoint) {
  TempDir d;
  Study s(open_store_in(d), script_options());
  auto ev = script_evaluator();
  RunOptions ro;
  ro.n_trials = 24;
  ro.n_jobs = 2;
  ro.runs_dir = (d.path / "runs").string();
  auto sum = optimize(s, ev, ro);
  EXPECT_EQ(sum.failed, 0);

  Checkpoints ck((d.path / "runs" / "ck").string());
  auto trials = s.trials();
  int promotions = 0;
  for (const auto& t : trials) {
    ASSERT_EQ(t.state, TrialState::Complete) << "trial " << t.number << ": " << t.fail_reason;
    // Every trial's checkpoint was sealed: one file, the step it reached.
    ASSERT_TRUE(t.attrs.count(kAttrCheckpoint)) << "trial " << t.number;
    EXPECT_THAT(t.attrs.at(kAttrCheckpoint), HasSubstr("\"path\":\"state\""));
    const fs::path td = trial_dir(d.path / "runs", t.number);
    auto parent = int_attr(t, tuners::kAttrRestoreFrom);
    const double budget = std::stod(t.attrs.at(tuners::kAttrBudget));
    if (!parent) {
      EXPECT_EQ(trim(read_file(td / "restored_from")), "none");
      EXPECT_EQ(std::stoi(read_file(td / "steps_run")), static_cast<int>(budget));
      continue;
    }
    ++promotions;
    const Trial& p = trials.at(static_cast<size_t>(*parent));
    const double parent_budget = std::stod(p.attrs.at(tuners::kAttrBudget));
    EXPECT_EQ(trim(read_file(td / "restored_from")), ck.dir_of(*parent)) << "trial " << t.number;
    // Only the steps beyond the parent's were run, and its reports start right after them.
    EXPECT_EQ(std::stoi(read_file(td / "steps_run")), static_cast<int>(budget - parent_budget));
    ASSERT_FALSE(t.reports.empty());
    EXPECT_EQ(t.reports.front().step, static_cast<int64_t>(parent_budget) + 1);
    auto pj = nlohmann::json::parse(read_file(td / "params.json"));
    EXPECT_EQ(pj["_kestrel"]["restore_from"], ck.dir_of(*parent));
    EXPECT_EQ(pj["_kestrel"]["checkpoint_dir"], ck.dir_of(t.number));
  }
  EXPECT_GE(promotions, 4);  // 24 trials at eta 3 promote at least a few times
}

TEST(CheckpointLifecycle, CorruptParentCheckpointFailsOnlyTheTrialRestoringFromIt) {
  TempDir d;
  Study s(open_store_in(d), script_options());
  auto ev = script_evaluator();
  Checkpoints ck((d.path / "runs" / "ck").string());
  std::optional<int64_t> corrupted;
  RunOptions ro;
  ro.n_trials = 15;
  ro.n_jobs = 1;  // the corruption below happens before the next ask
  ro.runs_dir = (d.path / "runs").string();
  ro.on_trial_end = [&](const Trial& t) {
    // After the third rung-0 trial ASHA promotes the best of the first three: damage that one's checkpoint.
    if (t.number != 2) return;
    std::optional<Trial> best;
    for (const auto& u : s.trials())
      if (u.state == TrialState::Complete && (!best || u.values[0] < best->values[0])) best = u;
    ASSERT_TRUE(best);
    corrupted = best->number;
    std::ofstream(fs::path(ck.dir_of(best->number)) / "state", std::ios::app) << "garbage\n";
  };
  auto sum = optimize(s, ev, ro);
  ASSERT_TRUE(corrupted);
  EXPECT_EQ(sum.stop_reason, "n_trials");

  int restoring = 0, other_promotions = 0;
  for (const auto& t : s.trials()) {
    auto parent = int_attr(t, tuners::kAttrRestoreFrom);
    if (parent == corrupted) {
      ++restoring;
      EXPECT_EQ(t.state, TrialState::Failed);
      EXPECT_THAT(t.fail_reason, HasSubstr("cannot restore from trial " + std::to_string(*corrupted)));
      EXPECT_THAT(t.fail_reason, HasSubstr("corrupt"));
    } else {
      EXPECT_EQ(t.state, TrialState::Complete) << "trial " << t.number << ": " << t.fail_reason;
      if (parent) ++other_promotions;
    }
  }
  EXPECT_EQ(restoring, 1);
  EXPECT_GE(other_promotions, 1);  // the sweep went on promoting from healthy checkpoints
}

TEST(CheckpointLifecycle, RetentionKeepsTheBestAndPinnedAndNeverDeletesAPinnedOne) {
  TempDir d;
  Study s(open_store_in(d), script_options());
  auto ev = script_evaluator();
  Checkpoints ck((d.path / "runs" / "ck").string());
  RunOptions ro;
  ro.n_trials = 30;
  ro.n_jobs = 2;
  ro.runs_dir = (d.path / "runs").string();
  ro.checkpoint_policy.keep_best = 1;
  int missing_while_pinned = 0;
  ro.on_trial_end = [&](const Trial&) {
    // Whatever a running trial restores from must still exist.
    for (const auto& t : s.trials())
      if (t.state == TrialState::Running)
        if (auto p = int_attr(t, tuners::kAttrRestoreFrom); p && !fs::exists(ck.dir_of(*p))) ++missing_while_pinned;
  };
  auto sum = optimize(s, ev, ro);
  EXPECT_EQ(sum.failed, 0);  // no promotion found its parent's checkpoint deleted
  EXPECT_EQ(missing_while_pinned, 0);

  auto trials = s.trials();
  tuners::AshaTuner asha(tuners::AshaParams::from_json(script_options().tuner_params), 7);
  tuners::History h;
  h.space = &s.options().space;
  h.objectives = s.options().objectives;
  for (const auto& t : trials) h.trials.push_back(&t);
  const auto future = asha.may_restore(h);
  const auto best = s.best_trial();
  ASSERT_TRUE(best);
  int deleted = 0;
  for (const auto& t : trials) {
    const bool exists = fs::exists(ck.dir_of(t.number));
    if (t.number == best->number || future.count(t.number)) {
      EXPECT_TRUE(exists) << "trial " << t.number << " is best or may still be promoted";
    } else {
      EXPECT_FALSE(exists) << "trial " << t.number << " is neither best nor pinned";
      EXPECT_TRUE(t.attrs.count(kAttrCheckpointDeleted)) << "trial " << t.number;
      ++deleted;
    }
  }
  EXPECT_GE(deleted, 3);  // promoted parents whose children finished are freed
}

// --- The trainer evaluator continues promoted trials from their checkpoints. ---

namespace {

struct Blobs {
  TempDir dir;
  fs::path train_file;
  Blobs() {
    write_blobs_csv(dir.path / "blobs.csv", 120, 0.6, 1.0, 0.5);
    train_file = dir.path / "train.yaml";
    std::ofstream t(train_file);
    // A constant learning rate: only then does a longer total budget leave the earlier steps unchanged.
    t << "model:\n"
         "  input: [2]\n"
         "  nodes:\n"
         "    - {op: linear, out: 6}\n"
         "    - {op: relu}\n"
         "    - {op: linear, out: 2}\n"
         "data: {dataset: csv, train_path: blobs.csv, validation: 0.25}\n"
         "optimizer: {kind: sgd, lr: 0.05, momentum: 0.9}\n"
         "schedule: {kind: constant}\n"
         "training: {epochs: 1, batch_size: 16, seed: 3, threads: 1, evaluate_test: false}\n";
  }
};

SearchSpace trainer_space() { return SearchSpace({ParamSpec::uniform("lr", 0.01, 0.2, true)}); }

}  // namespace

TEST(CheckpointLifecycle, TrainerContinuesAPromotedTrialExactlyAndWithFewerEpochs) {
  Blobs b;
  auto opts = asha_options(trainer_space(), "val_loss", search::Direction::Minimize);
  Study s(open_store_in(b.dir), opts);
  TrainerEvaluator ev({b.train_file.string()}, opts.objectives, opts.space);
  RunOptions ro;
  ro.n_trials = 13;  // 9 at rung 0, 3 at rung 1, 1 at rung 2 at the least
  ro.runs_dir = (b.dir.path / "runs").string();
  auto sum = optimize(s, ev, ro);
  ASSERT_EQ(sum.failed, 0);

  auto trials = s.trials();
  const Trial* top = nullptr;
  int64_t epochs_run = 0, epochs_from_scratch = 0;
  for (const auto& t : trials) {
    ASSERT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    std::set<int64_t> steps;
    for (const auto& r : t.reports) steps.insert(r.step);
    epochs_run += static_cast<int64_t>(steps.size());
    epochs_from_scratch += std::llround(std::stod(t.attrs.at(tuners::kAttrBudget)));
    if (t.attrs.at(tuners::kAttrRung) == "2") top = &t;
  }
  ASSERT_NE(top, nullptr) << "no trial reached the top rung";
  EXPECT_LT(epochs_run, epochs_from_scratch);

  // The top-rung trial trained only its last 6 epochs (3 -> 9), reported as epochs 4..9.
  std::set<int64_t> top_steps;
  for (const auto& r : top->reports) top_steps.insert(r.step);
  EXPECT_EQ(top_steps, (std::set<int64_t>{4, 5, 6, 7, 8, 9}));

  // An uninterrupted run of its configuration for the full 9 epochs ends with the same weights.
  Checkpoints ck((b.dir.path / "runs" / "ck").string());
  auto spec = ev.spec_for(top->config, 9.0);
  spec.checkpoint_dir = (b.dir.path / "full").string();
  spec.checkpoint_every = 9;
  auto data = trainer::load_train_data(spec);
  auto full = trainer::train(spec, data);
  const std::string a = read_file(fs::path(ck.dir_of(top->number)) / "epoch-0009" / "model.safetensors");
  const std::string f = read_file(b.dir.path / "full" / "epoch-0009" / "model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, f);
  EXPECT_EQ(top->values[0], full.final_metrics.val_loss);
}

TEST(CheckpointLifecycle, ARestoreThatDoesNotFitFailsThatTrialWithTheReason) {
  Blobs b;
  auto opts = asha_options(trainer_space(), "val_loss", search::Direction::Minimize);
  Study s(open_store_in(b.dir), opts);
  TrainerEvaluator ev({b.train_file.string()}, opts.objectives, opts.space);
  // A checkpoint of another architecture (8 hidden units instead of 6) where the trial restores from.
  Checkpoints ck((b.dir.path / "runs" / "ck").string());
  std::string text = read_file(b.train_file);
  text.replace(text.find("out: 6"), 6, "out: 8");
  std::ofstream(b.dir.path / "other.yaml") << text;
  auto other = trainer::load_train_spec((b.dir.path / "other.yaml").string());
  other.checkpoint_dir = ck.dir_of(0);
  trainer::train(other);
  // Trial 0 is that checkpoint's owner (sealed); trial 1 restores from it.
  auto h0 = s.ask();
  h0.set_attr(kAttrCheckpoint, ck.seal(0));
  h0.tell(1.0);
  Config c{{"lr", 0.05}};
  s.enqueue(c, {{tuners::kAttrRestoreFrom, "0"}, {tuners::kAttrBudget, "3"}});
  RunOptions ro;
  ro.n_trials = 2;
  ro.runs_dir = (b.dir.path / "runs").string();
  auto sum = optimize(s, ev, ro);
  EXPECT_EQ(sum.failed, 1);
  auto t1 = s.trials().at(1);
  EXPECT_EQ(t1.state, TrialState::Failed);
  EXPECT_THAT(t1.fail_reason, HasSubstr(ck.dir_of(0)));
}

TEST(CheckpointLifecycle, SweepFileSetsTheRetentionPolicyAndKnowsTheCheckpointPlaceholders) {
  const std::string base =
      "space: {x: {type: float, low: 0, high: 1}}\n"
      "objective: {name: loss, direction: minimize}\n"
      "tuner: {kind: asha, min_resource: 1, max_resource: 9, eta: 3}\n"
      "evaluator: {kind: command, command: [run.sh, '{x}', '{checkpoint_dir}', '{restore_from}']}\n";
  auto spec = parse_sweep(base + "checkpoints: {keep_best: 2}\n", "s.yaml", "/tmp");
  EXPECT_EQ(spec.run_options().checkpoint_policy.keep_best, 2);
  EXPECT_EQ(parse_sweep(base, "s.yaml", "/tmp").run_options().checkpoint_policy.keep_best, 0);
  try {
    parse_sweep(base + "checkpoints: {keep_bets: 2}\n", "s.yaml", "/tmp");
    ADD_FAILURE() << "a misspelt key was accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("keep_best"));
  }
  EXPECT_THROW(parse_sweep(base + "checkpoints: {keep_best: -1}\n", "s.yaml", "/tmp"), ConfigError);
}
