// Synthetic learning curves for the multi-fidelity benchmark (mirrored in optuna_peers.py: keep the two in step).
// Five hyperparameters in [0, 1]; configurations that converge fast plateau high, so early leaders often lose.
#pragma once

#include <cmath>

namespace kestrel::bench {

inline constexpr int kMaxSteps = 81;       // full budget of one training run
inline constexpr double kNoise = 0.01;     // standard deviation of the noise on every reported value
inline constexpr int kDims = 5;            // parameters x1..x5

// Error the configuration converges to: known optimum 0.05 at x = (0.7, 0.3, 0.5, 0.2, 0.8) (reached as t -> inf).
inline double final_error(const double* x) {
  static constexpr double c[kDims] = {0.7, 0.3, 0.5, 0.2, 0.8};
  static constexpr double w[kDims] = {1.0, 0.8, 0.6, 0.4, 0.2};
  double f = 0.05;
  for (int i = 0; i < kDims; ++i) f += w[i] * (x[i] - c[i]) * (x[i] - c[i]);
  return f;
}
// Time constant: large x1 learns slowly (and ends best near x1 = 0.7), so fast starters lead early and lose late.
// "moderate": tau = 2 + 6 x1^2, near-optimal curves overtake fast ones between 3 and 9 steps;
// "strong":   tau = 1 + 15 x1^2, they overtake only between 9 and 27 steps (hard for successive halving);
// "none":     tau = 4 for all, so curves never cross and every budget ranks like the full one (up to noise).
enum class Crossing { Moderate, Strong, None };
inline double time_constant(double x1, Crossing c) {
  if (c == Crossing::None) return 4.0;
  return c == Crossing::Moderate ? 2.0 + 6.0 * x1 * x1 : 1.0 + 15.0 * x1 * x1;
}
// Noise-free error after t steps of training.
inline double error_at(const double* x, double t, Crossing c) {
  const double f = final_error(x);
  return f + (1.0 - f) * std::exp(-t / time_constant(x[0], c));
}
// The quantity each method is judged on: the noise-free error of the picked configuration after the full budget.
inline double true_final_error(const double* x, Crossing c) { return error_at(x, kMaxSteps, c); }

}  // namespace kestrel::bench
