// Tests of trainer/schedule: each learning-rate policy at known points, warm-up composition,
// one-cycle against PyTorch OneCycleLR's formula, and refusal of bad settings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "common/error.hpp"
#include "trainer/schedule.hpp"

namespace kestrel::trainer::testing {
extern std::atomic<long> g_allocations;  // counted by the operator new in test_optim.cpp
}  // namespace kestrel::trainer::testing

namespace kestrel::trainer {
namespace {

ScheduleSpec spec_of(const std::string& kind) {
  ScheduleSpec s;
  s.kind = kind;
  return s;
}

TEST(Schedule, ConstantIgnoresTheStep) {
  const ScheduleSpec s = spec_of("constant");
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 0, 10), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 1000, 10), 0.1f);
}

TEST(Schedule, StepDecaysEveryStepSize) {
  ScheduleSpec s = spec_of("step");
  s.step_size = 10;
  s.gamma = 0.5f;
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 9, 100), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 10, 100), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 25, 100), 0.025f);
}

TEST(Schedule, ExponentialMultipliesByGammaEachStep) {
  ScheduleSpec s = spec_of("exponential");
  s.gamma = 0.9f;
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 2, 0), 0.081f);
}

TEST(Schedule, CosineFromBaseToMinAndHeldAfterTheEnd) {
  // min + (base - min) * (1 + cos(pi t / T)) / 2 with base 0.1, min 0.001, T 100.
  ScheduleSpec s = spec_of("cosine");
  s.min_lr = 0.001f;
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 0, 100), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 25, 100), 0.0855017857f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 50, 100), 0.0505f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 100, 100), 0.001f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 150, 100), 0.001f);
}

TEST(Schedule, LinearDecayReachesMinLrAtTheEnd) {
  ScheduleSpec s = spec_of("linear");
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 5, 10), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 10, 10), 0.0f);
}

TEST(Schedule, WarmupRampsLinearlyThenRunsTheMainScheduleShifted) {
  // 4 warm-up steps: lr = main(0) * (t+1)/4; then cosine over the remaining 100 steps.
  ScheduleSpec s = spec_of("cosine");
  s.min_lr = 0.001f;
  s.warmup_steps = 4;
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 0, 104), 0.025f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 1, 104), 0.05f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 3, 104), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 4, 104), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.1f, 54, 104), 0.0505f);
  // Warm-up before a step schedule.
  ScheduleSpec st = spec_of("step");
  st.step_size = 10;
  st.gamma = 0.5f;
  st.warmup_steps = 2;
  EXPECT_FLOAT_EQ(lr_at(st, 0.2f, 0, 50), 0.1f);
  EXPECT_FLOAT_EQ(lr_at(st, 0.2f, 12, 50), 0.1f);  // main step 10
}

TEST(Schedule, OneCycleFollowsPyTorchOneCycleLR) {
  // OneCycleLR(max_lr=1, total_steps=100, pct_start=0.3, div_factor=25, final_div_factor=1e4,
  // anneal_strategy='cos'): initial 0.04, phase-1 end step 29, final 4e-6 at step 99;
  // anneal(start, end, pct) = end + (start - end)/2 * (cos(pi*pct) + 1).
  ScheduleSpec s = spec_of("onecycle");
  s.max_lr = 1.0f;
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 0, 100), 0.04f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 10, 100), 0.295163948f);  // anneal(0.04, 1, 10/29)
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 29, 100), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 64, 100), 0.500002f);  // anneal(1, 4e-6, 35/70)
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 99, 100), 4e-6f);
  // max_lr unset: the base lr is the peak.
  s.max_lr = 0.0f;
  EXPECT_FLOAT_EQ(lr_at(s, 0.5f, 29, 100), 0.5f);
}

TEST(Schedule, OneCycleThreePhase) {
  // Phases end at 29 (0.04 -> 1), 58 (1 -> 0.04), 99 (0.04 -> 4e-6).
  ScheduleSpec s = spec_of("onecycle");
  s.max_lr = 1.0f;
  s.three_phase = true;
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 29, 100), 1.0f);
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 40, 100), 0.697666315f);  // anneal(1, 0.04, 11/29)
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 58, 100), 0.04f);
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 80, 100), 0.0177085609f);  // anneal(0.04, 4e-6, 22/41)
  EXPECT_FLOAT_EQ(lr_at(s, 1.0f, 99, 100), 4e-6f);
}

TEST(Schedule, LrAtDoesNotAllocate) {
  // lr_at runs every training step; it must not touch the heap for any kind.
  std::vector<ScheduleSpec> specs;
  for (const std::string& kind : schedule_kinds()) {
    ScheduleSpec s = spec_of(kind);
    s.warmup_steps = 3;
    s.three_phase = true;
    specs.push_back(s);
  }
  float sink = 0.0f;
  const long before = testing::g_allocations.load();
  for (const ScheduleSpec& s : specs)
    for (int64_t t = 0; t < 50; ++t) sink += lr_at(s, 0.1f, t, 40);
  EXPECT_EQ(testing::g_allocations.load() - before, 0);
  EXPECT_GT(sink, 0.0f);
}

TEST(Schedule, BadSettingsAreConfigErrors) {
  EXPECT_THROW(lr_at(spec_of("triangle"), 0.1f, 0, 10), ConfigError);
  ScheduleSpec st = spec_of("step");
  st.step_size = 0;
  EXPECT_THROW(lr_at(st, 0.1f, 0, 10), ConfigError);
  EXPECT_THROW(lr_at(spec_of("cosine"), 0.1f, 0, 0), ConfigError);
  ScheduleSpec oc = spec_of("onecycle");
  oc.pct_start = 1.0f;
  EXPECT_THROW(validate(oc), ConfigError);
  try {
    validate(spec_of("triangle"));
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(),
                ::testing::HasSubstr("constant, step, exponential, cosine, linear, onecycle"));
  }
}

}  // namespace
}  // namespace kestrel::trainer
