// Tests of PBT: Jaderberg et al.'s toy problem (PBT beats grid and random search at equal steps), truncation
// selection and explore, sync vs async scheduling, resume mid-generation, and the lineage schedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "tuners/pbt.hpp"
#include "tuners/support.hpp"
#include "tests/tuners/test_hyperband_sim.hpp"

namespace kestrel::tuners {
namespace {

using testing::Sim;

// Jaderberg et al. (2017), section 4.1: maximise Q(theta) = 1.2 - (theta0^2 + theta1^2) by gradient ascent on the
// surrogate Q(theta|h) = 1.2 - (h0 theta0^2 + h1 theta1^2), from theta = (0.9, 0.9), step size 0.01.
struct Toy {
  double th0 = 0.9, th1 = 0.9;
  double step = 0;
  int64_t steps_run = 0;  // over the whole study: the cost every method is compared at
  static constexpr double kLr = 0.01;
  static double q(double a, double b) { return 1.2 - (a * a + b * b); }
};

Sim toy_sim() {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("h0", 0, 1), search::ParamSpec::uniform("h1", 0, 1)});
  sim.objectives = {search::Objective{"Q", search::Direction::Maximize}};
  return sim;
}

// Trains one trial from its restore point up to its budget; the checkpoint is the state it ends in.
void train(search::Trial& t, std::map<int64_t, Toy>& checkpoints, int64_t& total_steps) {
  Toy s;
  if (auto it = t.attrs.find(kAttrRestoreFrom); it != t.attrs.end()) s = checkpoints.at(std::stoll(it->second));
  const double h0 = search::as_double(t.config.at("h0")), h1 = search::as_double(t.config.at("h1"));
  for (; s.step < Sim::budget(t); s.step += 1) {
    s.th0 -= Toy::kLr * 2 * h0 * s.th0;
    s.th1 -= Toy::kLr * 2 * h1 * s.th1;
    ++total_steps;
  }
  checkpoints[t.number] = s;
  Sim::complete(t, Toy::q(s.th0, s.th1));
}

// A full-length run of fixed hyperparameters (what grid and random search do with each configuration).
double fixed_run(double h0, double h1, int64_t steps, int64_t& total_steps) {
  double a = 0.9, b = 0.9;
  for (int64_t k = 0; k < steps; ++k) {
    a -= Toy::kLr * 2 * h0 * a;
    b -= Toy::kLr * 2 * h1 * b;
    ++total_steps;
  }
  return Toy::q(a, b);
}

struct PbtRun {
  double best = -INFINITY;
  int64_t steps = 0;
  Sim sim;
};

// The paper's setting: a population of two starting at h = (1, 0) and (0, 1) (enqueued as generation 0 by hand),
// exploit/explore every 4 steps, 100 steps per member.
PbtRun run_toy_pbt(uint64_t seed, const std::string& mode = "sync") {
  PbtRun r;
  r.sim = toy_sim();
  PbtTuner tuner(PbtParams::from_json({{"population", 2}, {"interval", 4}, {"total_steps", 100}, {"mode", mode}}),
                 seed);
  std::map<int64_t, Toy> checkpoints;
  r.sim.add({{"h0", 1.0}, {"h1", 0.0}}, {{kAttrPbtMember, "0"}, {kAttrPbtGeneration, "0"}, {kAttrBudget, "4"}});
  r.sim.add({{"h0", 0.0}, {"h1", 1.0}}, {{kAttrPbtMember, "1"}, {kAttrPbtGeneration, "0"}, {kAttrBudget, "4"}});
  for (auto& t : r.sim.trials) train(t, checkpoints, r.steps);
  for (;;) {
    auto pins = tuner.may_restore(r.sim.history());
    search::Trial* t = nullptr;
    try {
      t = &r.sim.ask(tuner);
    } catch (const SpaceExhausted&) {
      break;
    }
    if (auto it = t->attrs.find(kAttrRestoreFrom); it != t->attrs.end()) {
      EXPECT_TRUE(pins.count(std::stoll(it->second))) << "restore_from " << it->second << " was not pinned";
    }
    train(*t, checkpoints, r.steps);
    if (Sim::budget(*t) >= 100) r.best = std::max(r.best, t->values[0]);
  }
  return r;
}

TEST(PbtTuner, BeatsGridAndRandomSearchOnJaderbergsToyProblemAtEqualSteps) {
  int64_t grid_steps = 0;
  const double grid = std::max(fixed_run(1, 0, 100, grid_steps), fixed_run(0, 1, 100, grid_steps));
  std::vector<double> pbt, random;
  for (uint64_t seed = 0; seed < 15; ++seed) {
    PbtRun r = run_toy_pbt(seed);
    EXPECT_EQ(r.steps, grid_steps) << "PBT must use the same number of steps";
    pbt.push_back(r.best);
    Rng rng(derive_seed(seed, 0, 99));
    int64_t random_steps = 0;
    double best = -INFINITY;
    for (int m = 0; m < 2; ++m) {
      double h0 = rng.uniform(), h1 = rng.uniform();
      best = std::max(best, fixed_run(h0, h1, 100, random_steps));
    }
    EXPECT_EQ(random_steps, grid_steps);
    random.push_back(best);
  }
  std::sort(pbt.begin(), pbt.end());
  std::sort(random.begin(), random.end());
  const double pbt_median = pbt[pbt.size() / 2], random_median = random[random.size() / 2];
  EXPECT_GT(pbt.front(), grid) << "worst PBT seed vs the paper's grid (h = (1,0), (0,1))";
  EXPECT_GT(pbt_median, random_median);
  EXPECT_GT(pbt_median, 1.0);  // close to the optimum 1.2, where grid plateaus near 0.38
}

TEST(PbtTuner, BottomMemberCopiesATopMemberAndPerturbsByTheFactors) {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("lr", 0.001, 1.0, true),
                                   search::ParamSpec::integer("width", 1, 100),
                                   search::ParamSpec::categorical("opt", {std::string("adam"), std::string("sgd")})});
  PbtTuner tuner(PbtParams::from_json({{"population", 4}, {"interval", 10}, {"total_steps", 30},
                                       {"resample_probability", 0.0}}),
                 3);
  std::vector<search::Trial*> gen0;
  for (int m = 0; m < 4; ++m) gen0.push_back(&sim.ask(tuner));
  const std::vector<double> values = {0.1, 0.5, 0.3, 0.9};  // minimize: member 0 is top, member 3 bottom
  for (int m = 0; m < 4; ++m) Sim::complete(*gen0[static_cast<size_t>(m)], values[static_cast<size_t>(m)]);
  for (int m = 0; m < 4; ++m) {
    auto& t = sim.ask(tuner);
    EXPECT_EQ(t.attrs.at(kAttrPbtMember), std::to_string(m));
    EXPECT_EQ(t.attrs.at(kAttrPbtGeneration), "1");
    EXPECT_DOUBLE_EQ(Sim::budget(t), 20.0);
    if (m != 3) {
      EXPECT_EQ(t.attrs.at(kAttrRestoreFrom), std::to_string(gen0[static_cast<size_t>(m)]->number));
      EXPECT_EQ(t.config, gen0[static_cast<size_t>(m)]->config);
      EXPECT_EQ(t.attrs.count(kAttrPbtDonor), 0u);
      continue;
    }
    const auto& donor = gen0[0]->config;
    EXPECT_EQ(t.attrs.at(kAttrRestoreFrom), std::to_string(gen0[0]->number));
    EXPECT_EQ(t.attrs.at(kAttrPbtDonor), std::to_string(gen0[0]->number));
    const double lr0 = search::as_double(donor.at("lr")), lr = search::as_double(t.config.at("lr"));
    const bool lr_ok = std::abs(lr - std::min(1.0, lr0 * 0.8)) < 1e-12 || std::abs(lr - std::min(1.0, lr0 * 1.2)) < 1e-12;
    EXPECT_TRUE(lr_ok) << lr0 << " -> " << lr;
    const double w0 = search::as_double(donor.at("width")), w = search::as_double(t.config.at("width"));
    EXPECT_TRUE(w == std::clamp(std::round(w0 * 0.8), 1.0, 100.0) || w == std::clamp(std::round(w0 * 1.2), 1.0, 100.0))
        << w0 << " -> " << w;
    EXPECT_TRUE(search::values_equal(t.config.at("opt"), donor.at("opt")));  // categories change only by resampling
    EXPECT_NO_THROW(sim.space.check(t.config));
  }
}

TEST(PbtTuner, SyncWaitsForTheGenerationWhileAsyncContinuesTheFreeMember) {
  for (const std::string mode : {"sync", "async"}) {
    Sim sim;
    sim.space = search::SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
    PbtTuner tuner(PbtParams::from_json({{"population", 4}, {"interval", 5}, {"total_steps", 10}, {"mode", mode}}), 1);
    std::vector<search::Trial*> gen0;
    for (int m = 0; m < 4; ++m) gen0.push_back(&sim.ask(tuner));
    for (int m = 0; m < 3; ++m) Sim::complete(*gen0[static_cast<size_t>(m)], 1.0 + m);
    if (mode == "sync") {
      EXPECT_THROW(sim.ask(tuner), NotReady);
      Sim::complete(*gen0[3], 0.5);
      EXPECT_EQ(sim.ask(tuner).attrs.at(kAttrPbtGeneration), "1");
    } else {
      auto& t = sim.ask(tuner);
      EXPECT_EQ(t.attrs.at(kAttrPbtGeneration), "1");
      EXPECT_EQ(t.attrs.at(kAttrPbtMember), "0");
      sim.ask(tuner);
      sim.ask(tuner);
      EXPECT_THROW(sim.ask(tuner), NotReady);  // only member 3 (still running) is left
    }
  }
}

// Drives PBT with 3 trials in flight (async) or one generation at a time (sync), rebuilding the tuner every
// `restart_every` asks when > 0. Returns the proposals as text.
std::vector<std::string> drive_pbt(const std::string& mode, int restart_every) {
  Sim sim = toy_sim();
  nlohmann::json params = {{"population", 5}, {"interval", 3}, {"total_steps", 30}, {"mode", mode},
                           {"resample_probability", 0.3}};
  auto tuner = std::make_unique<PbtTuner>(PbtParams::from_json(params), 21);
  std::map<int64_t, Toy> ckpt;
  int64_t steps = 0;
  std::deque<search::Trial*> running;
  std::vector<std::string> out;
  for (int k = 0;; ++k) {
    if (restart_every > 0 && k % restart_every == restart_every - 1)
      tuner = std::make_unique<PbtTuner>(PbtParams::from_json(params), 21);
    search::Trial* t = nullptr;
    try {
      t = &sim.ask(*tuner);
    } catch (const NotReady&) {
      if (running.empty()) ADD_FAILURE() << "NotReady with nothing running";
      train(*running.front(), ckpt, steps);
      running.pop_front();
      continue;
    } catch (const SpaceExhausted&) {
      if (running.empty()) break;
      train(*running.front(), ckpt, steps);
      running.pop_front();
      continue;
    }
    std::string s = search::config_to_json(t->config).dump();
    for (const auto& [key, v] : t->attrs) s += " " + key + "=" + v;
    out.push_back(s);
    running.push_back(t);
    if (running.size() >= 3) {
      train(*running.front(), ckpt, steps);
      running.pop_front();
    }
  }
  if (mode == "sync") {
    EXPECT_EQ(steps, 5 * 30);
  } else {
    // Async copies continue from the donor's step, which may be ahead of or behind the member's own.
    EXPECT_GT(steps, 0);
  }
  return out;
}

TEST(PbtTuner, ResumeMidGenerationRepeatsTheUninterruptedDecisions) {
  for (const std::string mode : {"sync", "async"}) {
    auto straight = drive_pbt(mode, 0);
    auto resumed = drive_pbt(mode, 4);
    if (mode == "sync") EXPECT_EQ(straight.size(), 50u) << mode;  // 5 members x 10 segments
    EXPECT_EQ(straight, resumed) << mode;
    EXPECT_TRUE(std::any_of(straight.begin(), straight.end(),
                            [](const std::string& s) { return s.find("pbt.donor=") != std::string::npos; }))
        << mode << ": no exploit happened, so the test did not cover it";
  }
}

TEST(PbtSchedule, FollowsTheBestMembersLineageThroughExploits) {
  PbtRun r = run_toy_pbt(4);
  History h = r.sim.history();
  auto schedule = pbt_schedule(h);
  ASSERT_EQ(schedule.size(), 25u);  // 100 steps / 4
  EXPECT_DOUBLE_EQ(schedule.front().step_begin, 0);
  EXPECT_DOUBLE_EQ(schedule.back().step_end, 100);
  ASSERT_TRUE(schedule.back().value.has_value());
  EXPECT_DOUBLE_EQ(*schedule.back().value, r.best);
  bool exploited = false;
  for (size_t i = 1; i < schedule.size(); ++i) {
    EXPECT_DOUBLE_EQ(schedule[i].step_begin, schedule[i - 1].step_end);
    const auto& t = r.sim.trials[static_cast<size_t>(schedule[i].trial)];
    EXPECT_EQ(t.attrs.at(kAttrRestoreFrom), std::to_string(schedule[i - 1].trial));
    EXPECT_EQ(schedule[i].config, t.config);
    if (schedule[i].donor) exploited = true;
  }
  EXPECT_TRUE(exploited);
  const std::string text = format_pbt_schedule(schedule);
  EXPECT_NE(text.find("steps 0-4"), std::string::npos) << text;
  EXPECT_NE(text.find("exploit: copied trial"), std::string::npos) << text;
  EXPECT_EQ(format_pbt_schedule({}), "no PBT trial has completed yet\n");
}

}  // namespace
}  // namespace kestrel::tuners
