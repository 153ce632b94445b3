// Learning-rate schedules: closed forms of PyTorch's StepLR, ExponentialLR, CosineAnnealingLR and
// OneCycleLR, plus linear decay and a linear warm-up, as pure functions of the step.
#include "trainer/schedule.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "common/error.hpp"

namespace kestrel::trainer {

const std::vector<std::string>& schedule_kinds() {
  static const std::vector<std::string> kinds{"constant", "step",   "exponential",
                                              "cosine",   "linear", "onecycle"};
  return kinds;
}

void validate(const ScheduleSpec& spec) {
  const auto& kinds = schedule_kinds();
  if (std::find(kinds.begin(), kinds.end(), spec.kind) == kinds.end()) {
    std::string list;
    for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError("unknown learning-rate schedule '" + spec.kind + "' (valid: " + list + ")");
  }
  if (spec.warmup_steps < 0) throw ConfigError("schedule: warmup_steps must be >= 0");
  if (spec.kind == "step" && spec.step_size < 1)
    throw ConfigError("schedule: step_size must be >= 1");
  if ((spec.kind == "step" || spec.kind == "exponential") && !(spec.gamma > 0.0f)) {
    throw ConfigError("schedule: gamma must be > 0");
  }
  if (spec.kind == "onecycle") {
    if (!(spec.pct_start > 0.0f && spec.pct_start < 1.0f)) {
      throw ConfigError("schedule: pct_start must be in (0, 1)");
    }
    if (!(spec.div_factor > 0.0f) || !(spec.final_div_factor > 0.0f)) {
      throw ConfigError("schedule: div_factor and final_div_factor must be > 0");
    }
  }
}

namespace {

// PyTorch OneCycleLR's _annealing_cos: from start (pct = 0) to end (pct = 1).
double anneal_cos(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
}

double one_cycle(const ScheduleSpec& s, double base_lr, int64_t t, int64_t total) {
  const double max_lr = s.max_lr > 0.0f ? s.max_lr : base_lr;
  const double initial = max_lr / s.div_factor;
  const double min_lr = initial / s.final_div_factor;
  const double T = static_cast<double>(total);
  const double pct = s.pct_start;
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  // A fixed array: lr_at runs every training step and must not allocate.
  std::array<Phase, 3> phases{};
  size_t count = 0;
  if (s.three_phase) {
    phases = {Phase{pct * T - 1.0, initial, max_lr}, Phase{2.0 * pct * T - 2.0, max_lr, initial},
              Phase{T - 1.0, initial, min_lr}};
    count = 3;
  } else {
    phases = {Phase{pct * T - 1.0, initial, max_lr}, Phase{T - 1.0, max_lr, min_lr}, Phase{}};
    count = 2;
  }
  const double step = static_cast<double>(std::min<int64_t>(t, total - 1));
  double start_step = 0.0;
  for (size_t i = 0; i < count; ++i) {
    const Phase& ph = phases[i];
    if (step <= ph.end_step || i + 1 == count) {
      const double span = ph.end_step - start_step;
      // A phase of zero length (tiny total_steps) is already at its end value.
      const double frac = span > 0.0 ? (step - start_step) / span : 1.0;
      return anneal_cos(ph.start_lr, ph.end_lr, std::clamp(frac, 0.0, 1.0));
    }
    start_step = ph.end_step;
  }
  return min_lr;
}

double main_schedule(const ScheduleSpec& s, double base_lr, int64_t t, int64_t total) {
  const std::string& k = s.kind;
  if (k == "constant") return base_lr;
  if (k == "step")
    return base_lr * std::pow(static_cast<double>(s.gamma), static_cast<double>(t / s.step_size));
  if (k == "exponential")
    return base_lr * std::pow(static_cast<double>(s.gamma), static_cast<double>(t));
  if (total < 1) throw ConfigError("schedule '" + k + "' needs the total number of steps (>= 1)");
  if (k == "cosine") {
    const double frac = std::min(1.0, static_cast<double>(t) / static_cast<double>(total));
    return s.min_lr + (base_lr - s.min_lr) * (1.0 + std::cos(std::numbers::pi * frac)) / 2.0;
  }
  if (k == "linear") {
    const double frac = std::min(1.0, static_cast<double>(t) / static_cast<double>(total));
    return base_lr + (s.min_lr - base_lr) * frac;
  }
  return one_cycle(s, base_lr, t, total);
}

}  // namespace

float lr_at(const ScheduleSpec& spec, float base_lr, int64_t step, int64_t total_steps) {
  validate(spec);
  if (step < 0) throw ConfigError("schedule: step must be >= 0");
  if ((spec.kind == "cosine" || spec.kind == "linear" || spec.kind == "onecycle") &&
      total_steps < 1) {
    throw ConfigError("schedule '" + spec.kind + "' needs the total number of steps (>= 1)");
  }
  const int64_t w = spec.warmup_steps;
  const int64_t main_total = std::max<int64_t>(total_steps - w, 1);
  if (step < w) {
    const double first = main_schedule(spec, base_lr, 0, main_total);
    return static_cast<float>(first * static_cast<double>(step + 1) / static_cast<double>(w));
  }
  return static_cast<float>(main_schedule(spec, base_lr, step - w, main_total));
}

}  // namespace kestrel::trainer
