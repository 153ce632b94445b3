// Learning-rate schedules of the trainer: constant, step, exponential, cosine, linear decay and
// one-cycle, each optionally preceded by a linear warm-up; lr_at is a pure function of the step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kestrel::trainer {

// Settings of a schedule; fields a kind does not use are ignored. "step" is whatever unit the
// caller counts in (optimizer steps or epochs) as long as step and total_steps agree.
//   constant     lr = base_lr
//   step         lr = base_lr * gamma^floor(t / step_size)                (PyTorch StepLR)
//   exponential  lr = base_lr * gamma^t                                   (PyTorch ExponentialLR)
//   cosine       lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2   (CosineAnnealingLR,
//                closed form, T = total_steps; held at min_lr for t >= T)
//   linear       lr = base_lr + (min_lr - base_lr) * t / T  (linear decay to min_lr at t = T)
//   onecycle     PyTorch OneCycleLR with anneal_strategy "cos": from max_lr / div_factor up to
//                max_lr over the first pct_start * T steps, then down to
//                max_lr / div_factor / final_div_factor at t = T - 1 (three_phase as in PyTorch).
//                max_lr <= 0 means max_lr = base_lr.
// Warm-up (any kind): for t < warmup_steps, lr = main(0) * (t + 1) / warmup_steps, a linear ramp
// that reaches the main schedule's first value at the last warm-up step; after it the main
// schedule runs with t - warmup_steps over T = total_steps - warmup_steps.
struct ScheduleSpec {
  std::string kind = "constant";
  int64_t step_size = 1;          // step
  float gamma = 0.1f;             // step, exponential
  float min_lr = 0.0f;            // cosine, linear
  int64_t warmup_steps = 0;       // any kind
  float max_lr = 0.0f;            // onecycle
  float pct_start = 0.3f;         // onecycle
  float div_factor = 25.0f;       // onecycle
  float final_div_factor = 1e4f;  // onecycle
  bool three_phase = false;       // onecycle
};

// The kinds lr_at accepts.
const std::vector<std::string>& schedule_kinds();

// Refuses an unknown kind (listing the valid ones) or out-of-range settings with ConfigError:
// step_size < 1, gamma <= 0, warmup_steps < 0, pct_start outside (0, 1), div factors <= 0.
void validate(const ScheduleSpec& spec);

// The learning rate at 0-based step `step` of a run of total_steps steps. Pure: depends only on
// its arguments (so a resumed run gets exactly the same rates). cosine, linear and onecycle hold
// their final value past total_steps; step and exponential ignore total_steps.
// Validates spec (ConfigError); total_steps < 1 is a ConfigError for the kinds that need it
// (cosine, linear, onecycle).
float lr_at(const ScheduleSpec& spec, float base_lr, int64_t step, int64_t total_steps);

}  // namespace kestrel::trainer
