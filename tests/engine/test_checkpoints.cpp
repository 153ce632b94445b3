// Tests of the checkpoint lifecycle: folders and environment, restore from a sealed parent, missing or corrupt
// checkpoints failing only their trial, keep-best-k retention never deleting pinned checkpoints, Hyperband
// promotions continuing from checkpoints through the runner, and pruned command trials stopped promptly.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "common/error.hpp"
#include "engine/checkpoints.hpp"
#include "engine/command_evaluator.hpp"
#include "engine/runner.hpp"
#include "tests/engine/engine_test_util.hpp"
#include "tuners/multifidelity.hpp"

namespace kestrel::engine {
namespace {

using namespace kestrel::engine::testing;

search::Trial trial(int64_t number, TrialState state, std::map<std::string, std::string> attrs = {},
                    std::vector<double> values = {}) {
  search::Trial t;
  t.number = number;
  t.id = number + 100;
  t.state = state;
  t.attrs = std::move(attrs);
  t.values = std::move(values);
  return t;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(Checkpoints, PrepareGivesAFreshFolderAndRestoresFromASealedParent) {
  TempDir d;
  Checkpoints ck((d.path / "study").string());
  std::vector<search::Trial> trials = {trial(0, TrialState::Running)};
  auto a = ck.prepare(trials[0], trials);
  EXPECT_TRUE(fs::is_directory(a.checkpoint_dir));
  EXPECT_EQ(a.checkpoint_dir, (d.path / "study" / "trial_0" / "checkpoint").string());
  EXPECT_EQ(a.env.at(kCheckpointDirEnv), a.checkpoint_dir);
  EXPECT_EQ(a.env.count(kRestoreFromEnv), 0u);
  EXPECT_FALSE(a.restore_from);
  write(fs::path(a.checkpoint_dir) / "weights.bin", "0123456789");
  fs::create_directories(fs::path(a.checkpoint_dir) / "opt");
  write(fs::path(a.checkpoint_dir) / "opt" / "state", "abc");
  trials[0].state = TrialState::Complete;
  trials[0].attrs[kAttrCheckpoint] = ck.seal(0);
  auto manifest = nlohmann::json::parse(trials[0].attrs[kAttrCheckpoint]);
  ASSERT_EQ(manifest["files"].size(), 2u);
  EXPECT_EQ(manifest["files"][0]["path"], "opt/state");

  trials.push_back(trial(1, TrialState::Running, {{tuners::kAttrRestoreFrom, "0"}}));
  auto b = ck.prepare(trials[1], trials);
  ASSERT_TRUE(b.restore_from);
  EXPECT_EQ(*b.restore_from, ck.dir_of(0));
  EXPECT_EQ(b.env.at(kRestoreFromEnv), ck.dir_of(0));
  EXPECT_EQ(b.env.at(kCheckpointDirEnv), ck.dir_of(1));

  // A retried attempt of trial 1 starts from an empty folder, not from the previous attempt's partial files.
  write(fs::path(b.checkpoint_dir) / "partial", "x");
  ck.prepare(trials[1], trials);
  EXPECT_TRUE(fs::is_empty(b.checkpoint_dir));
}

TEST(Checkpoints, ParentThatWroteNoCheckpointMeansRerunFromScratch) {
  TempDir d;
  Checkpoints ck(d.path.string());
  std::vector<search::Trial> trials = {trial(0, TrialState::Complete), trial(1, TrialState::Running, {{"restore_from", "0"}})};
  ck.prepare(trials[0], trials);
  trials[0].attrs[kAttrCheckpoint] = ck.seal(0);  // the evaluator wrote nothing
  auto b = ck.prepare(trials[1], trials);
  EXPECT_FALSE(b.restore_from);
  EXPECT_EQ(b.env.count(kRestoreFromEnv), 0u);
  // Never sealed and never written (e.g. a run from before sealing existed): also from scratch.
  trials[0].attrs.erase(kAttrCheckpoint);
  fs::remove_all(ck.dir_of(0));
  EXPECT_FALSE(ck.prepare(trials[1], trials).restore_from);
}

// The EvalError message of restoring trial 1 from trial 0 after `damage`.
std::string restore_error(const std::function<void(Checkpoints&, std::vector<search::Trial>&)>& damage) {
  TempDir d;
  Checkpoints ck(d.path.string());
  std::vector<search::Trial> trials = {trial(0, TrialState::Complete), trial(1, TrialState::Running, {{"restore_from", "0"}})};
  auto a = ck.prepare(trials[0], trials);
  write(fs::path(a.checkpoint_dir) / "w", "0123456789");
  trials[0].attrs[kAttrCheckpoint] = ck.seal(0);
  damage(ck, trials);
  try {
    ck.prepare(trials[1], trials);
  } catch (const EvalError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Checkpoints, MissingOrCorruptParentFailsWithAClearReason) {
  EXPECT_EQ(restore_error([](auto&, auto&) {}), "no error");
  auto corrupt = restore_error([](Checkpoints& ck, auto&) { write(fs::path(ck.dir_of(0)) / "w", "0123456780"); });
  EXPECT_NE(corrupt.find("trial 0"), std::string::npos) << corrupt;
  EXPECT_NE(corrupt.find("corrupt"), std::string::npos) << corrupt;
  auto truncated = restore_error([](Checkpoints& ck, auto&) { write(fs::path(ck.dir_of(0)) / "w", "01234"); });
  EXPECT_NE(truncated.find("has 5 bytes, 10 were written"), std::string::npos) << truncated;
  auto gone = restore_error([](Checkpoints& ck, auto&) { fs::remove_all(ck.dir_of(0)); });
  EXPECT_NE(gone.find("missing"), std::string::npos) << gone;
  auto file_gone = restore_error([](Checkpoints& ck, auto&) { fs::remove(fs::path(ck.dir_of(0)) / "w"); });
  EXPECT_NE(file_gone.find("missing file"), std::string::npos) << file_gone;
  auto unsealed = restore_error([](Checkpoints&, auto& ts) { ts[0].attrs.erase(kAttrCheckpoint); });
  EXPECT_NE(unsealed.find("never sealed"), std::string::npos) << unsealed;
  auto deleted = restore_error([](Checkpoints&, auto& ts) { ts[0].attrs[kAttrCheckpointDeleted] = "retention"; });
  EXPECT_NE(deleted.find("deleted"), std::string::npos) << deleted;
  auto no_parent = restore_error([](Checkpoints&, auto& ts) { ts[1].attrs["restore_from"] = "7"; });
  EXPECT_NE(no_parent.find("no such trial"), std::string::npos) << no_parent;
}

TEST(Checkpoints, RetentionKeepsTheBestKAndNeverDeletesPinnedCheckpoints) {
  TempDir d;
  Checkpoints ck(d.path.string(), CheckpointPolicy{2});
  std::vector<search::Trial> trials;
  const std::vector<double> values = {5, 1, 4, 2, 6, 7, 3};
  for (int64_t n = 0; n < 7; ++n) trials.push_back(trial(n, TrialState::Complete, {}, {values[static_cast<size_t>(n)]}));
  trials[4].attrs[kAttrCheckpointPinned] = "1";                 // pinned by hand
  trials.push_back(trial(7, TrialState::Running, {{"restore_from", "5"}}));  // pinned by a running trial
  trials.push_back(trial(8, TrialState::Failed));
  for (const auto& t : trials) {
    fs::create_directories(ck.dir_of(t.number));
    write(fs::path(ck.dir_of(t.number)) / "w", "x");
  }
  EXPECT_EQ(ck.pinned(trials, {6}), (std::set<int64_t>{4, 5, 6}));
  auto deleted = ck.apply_retention(trials, search::Objective{}, {6});  // 6: a future promotion's parent
  std::sort(deleted.begin(), deleted.end());
  EXPECT_EQ(deleted, (std::vector<int64_t>{0, 2, 8}));  // best two are 1 and 3; 4, 5, 6 pinned; 7 still running
  for (int64_t n : {1, 3, 4, 5, 6, 7}) EXPECT_TRUE(fs::exists(ck.dir_of(n))) << n;
  for (int64_t n : {0, 2, 8}) EXPECT_FALSE(fs::exists(ck.dir_of(n))) << n;
  // Maximizing keeps the other end; still never a pinned one.
  Checkpoints ck1(d.path.string(), CheckpointPolicy{1});
  auto more = ck1.apply_retention(trials, search::Objective{"value", search::Direction::Maximize}, {6});
  std::sort(more.begin(), more.end());
  EXPECT_EQ(more, (std::vector<int64_t>{1, 3}));
  for (int64_t n : {4, 5, 6}) EXPECT_TRUE(fs::exists(ck.dir_of(n))) << n;
  // keep_best = 0 keeps everything.
  EXPECT_TRUE(Checkpoints(d.path.string()).apply_retention(trials, search::Objective{}).empty());
}

// An evaluator that trains a counter "model" with checkpoints: it restores the step count from KESTREL_RESTORE_FROM
// when given one and trains only the remaining steps up to the budget. It counts the steps it really ran.
// A checkpointing evaluator under the runner-owned lifecycle: continues from the "step" file of the checkpoint the
// runner hands it (EvalContext::restore_from), counts the steps it really trains, writes its own step file.
struct CountingEvaluator : Evaluator {
  std::atomic<int64_t> steps{0};
  void evaluate(TrialHandle& h, const EvalContext& c) override {
    int64_t start = 0;
    if (c.restore_from) std::ifstream(fs::path(*c.restore_from) / "step") >> start;
    const auto budget = static_cast<int64_t>(*h.budget());
    const double x = h.get_double("x");
    for (int64_t s = start; s < budget; ++s) ++steps;
    write(fs::path(c.checkpoint_dir) / "step", std::to_string(budget));
    h.tell((x - 0.4) * (x - 0.4) + 1.0 / static_cast<double>(budget));
  }
  std::string name() const override { return "counting"; }
};

TEST(Checkpoints, HyperbandPromotionsContinueFromTheirParentsCheckpointThroughTheRunner) {
  TempDir d;
  StudyOptions o;
  o.name = "hb";
  o.space = SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  o.tuner = "hyperband";
  o.tuner_params = {{"min_resource", 1}, {"max_resource", 9}, {"eta", 3}, {"iterations", 1}};
  o.heartbeat_interval = 0;
  Study study(open_store_in(d), o);
  CountingEvaluator ev;
  RunOptions ro;
  ro.runs_dir = (d.path / "runs").string();
  auto summary = optimize(study, ev, ro);
  EXPECT_EQ(summary.stop_reason, "exhausted");
  auto trials = study.trials();
  // R = 9, eta = 3: brackets (9@1, 3@3, 1@9), (5@3, 1@9), (3@9) = 22 trials.
  ASSERT_EQ(trials.size(), 22u);
  double budget_sum = 0, fresh_steps = 0;
  for (const auto& t : trials) {
    EXPECT_EQ(t.state, TrialState::Complete) << t.fail_reason;
    budget_sum += std::stod(t.attrs.at("budget"));
    if (!t.attrs.count(tuners::kAttrRestoreFrom)) fresh_steps += std::stod(t.attrs.at("budget"));
  }
  // Promoted trials only trained from their parent's budget up: total steps = what fresh trials needed plus, per
  // promotion, the difference between its budget and its parent's.
  double expected = fresh_steps;
  for (const auto& t : trials)
    if (auto it = t.attrs.find(tuners::kAttrRestoreFrom); it != t.attrs.end())
      expected += std::stod(t.attrs.at("budget")) -
                  std::stod(trials[static_cast<size_t>(std::stoll(it->second))].attrs.at("budget"));
  EXPECT_EQ(ev.steps.load(), static_cast<int64_t>(expected));
  EXPECT_LT(ev.steps.load(), static_cast<int64_t>(budget_sum));
}

TEST(Checkpoints, RetentionWithTheTunersPinsBoundsDiskAndNeverBreaksAPromotion) {
  for (const std::string kind : {"hyperband", "asha", "pbt"}) {
    TempDir d;
    StudyOptions o;
    o.name = "ret";
    o.space = SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
    o.tuner = kind;
    o.tuner_params = kind == "pbt" ? nlohmann::json{{"population", 4}, {"interval", 3}, {"total_steps", 9}}
                                   : nlohmann::json{{"min_resource", 1}, {"max_resource", 9}, {"eta", 3}};
    o.heartbeat_interval = 0;
    Study study(open_store_in(d), o);
    // The runner pins what running trials restore from and what the tuner's future proposals may restore.
    CountingEvaluator ev;
    RunOptions ro;
    ro.runs_dir = (d.path / "runs").string();
    ro.n_trials = 30;
    ro.checkpoint_policy.keep_best = 2;
    optimize(study, ev, ro);
    int restored = 0, deleted = 0;
    for (const auto& t : study.trials()) {
      EXPECT_EQ(t.state, TrialState::Complete) << kind << " trial " << t.number << ": " << t.fail_reason;
      if (t.attrs.count(tuners::kAttrRestoreFrom)) ++restored;
      if (t.attrs.count(kAttrCheckpointDeleted)) ++deleted;
    }
    EXPECT_GT(restored, 0) << kind;
    EXPECT_GT(deleted, 0) << kind << ": retention never deleted anything, so the test proved nothing";
  }
}

TEST(Checkpoints, ACorruptParentFailsOnlyTheRestoringTrialNeverTheSweep) {
  TempDir d;
  StudyOptions o;
  o.name = "hb";
  o.space = SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  o.tuner = "asha";
  o.tuner_params = {{"min_resource", 1}, {"max_resource", 9}, {"eta", 3}};
  o.heartbeat_interval = 0;
  Study study(open_store_in(d), o);
  Checkpoints ck((d.path / "runs" / "hb").string());
  CountingEvaluator ev;
  RunOptions ro;
  ro.runs_dir = (d.path / "runs").string();
  ro.n_trials = 12;
  // Corrupts every checkpoint once the runner sealed it (one job: before the next trial is asked), so every
  // promotion finds a damaged parent.
  ro.on_trial_end = [&](const Trial& t) {
    if (fs::exists(fs::path(ck.dir_of(t.number)) / "step")) write(fs::path(ck.dir_of(t.number)) / "step", "garbage!");
  };
  auto summary = optimize(study, ev, ro);
  EXPECT_EQ(summary.stop_reason, "n_trials");
  int failed = 0, complete = 0;
  for (const auto& t : study.trials()) {
    if (t.state == TrialState::Failed) {
      ++failed;
      EXPECT_TRUE(t.attrs.count(tuners::kAttrRestoreFrom));
      EXPECT_NE(t.fail_reason.find("is corrupt"), std::string::npos) << t.fail_reason;
    }
    if (t.state == TrialState::Complete) ++complete;
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(complete, 0);
}

TEST(Checkpoints, CommandTrialPrunedByAshaIsStoppedPromptly) {
  TempDir d;
  StudyOptions o;
  o.name = "cmd";
  o.space = SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  o.objectives = {search::Objective{"loss", search::Direction::Minimize}};
  o.pruner = "asha";
  o.pruner_params = {{"min_resource", 1}, {"reduction_factor", 3}};
  o.heartbeat_interval = 0;
  Study study(open_store_in(d), o);
  // Loss = $1 at every step, 1000 steps 0.05 s apart (50 s if never stopped); writes a checkpoint each step.
  const fs::path sh = d.path / "train.sh";
  write(sh,
        "#!/bin/sh\necho $$ > \"$KESTREL_TRIAL_DIR/pid\"\ni=0\nwhile [ $i -lt 1000 ]; do\n"
        "  echo $i > \"$KESTREL_CHECKPOINT_DIR/step\"\n  echo \"step=$i loss=$1\"\n  i=$((i + 1))\n"
        "  [ $i -ge ${2:-1000} ] && exit 0\n  sleep 0.05\ndone\n");
  fs::permissions(sh, fs::perms::owner_all);
  Checkpoints ck((d.path / "runs").string());
  auto run = [&](const std::string& loss, const std::string& steps) {
    auto h = study.ask();
    auto launch = ck.prepare(h.record(), study.trials());
    CommandSpec spec;
    spec.argv = {sh.string(), loss, steps};
    spec.env = launch.env;
    spec.grace_s = 0.5;
    CommandEvaluator ev(spec, study.options().objectives, study.options().space);
    EvalContext ctx;
    fs::path td = d.path / ("trial_" + std::to_string(h.number()));
    fs::create_directories(td);
    ctx.trial_dir = td.string();
    ev.evaluate(h, ctx);
    return std::make_pair(study.store().trial(h.id()), td);
  };
  auto [first, td0] = run("1", "3");  // a short good trial sets rung values 1 at steps 1 and 3
  ASSERT_EQ(first.state, TrialState::Complete) << first.fail_reason;
  EXPECT_TRUE(fs::exists(fs::path(ck.dir_of(first.number)) / "step"));  // it got KESTREL_CHECKPOINT_DIR
  auto [second, td1] = run("5", "");  // worse at rung step 1: pruned there
  EXPECT_EQ(second.state, TrialState::Pruned);
  int64_t last_step = -1;
  for (const auto& r : second.reports) last_step = std::max(last_step, r.step);
  EXPECT_EQ(last_step, 1);  // stopped at the rung, not after further steps
  pid_t pid = read_pid(td1 / "pid");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(process_gone_eventually(pid));
}

}  // namespace
}  // namespace kestrel::engine
