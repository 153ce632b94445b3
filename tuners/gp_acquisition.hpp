// Acquisition functions of the GP tuner (log expected improvement, upper confidence bound, log probability of
// improvement) with their gradients, and the numerically stable special functions they need.
#pragma once

#include <string>

#include "tuners/gp_model.hpp"

namespace kestrel::tuners::gp {

// Scaled complementary error function erfcx(x) = exp(x^2) erfc(x), for x >= 0 (accurate where erfc underflows).
double erfcx(double x);
// log Phi(z) (standard normal CDF), finite for every finite z; optional derivative phi(z) / Phi(z).
double log_ndtr(double z, double* dlog = nullptr);
// log h(z) with h(z) = phi(z) + z Phi(z), the expected improvement of a unit normal above -z: computed as in
// Ament et al. 2023 ("Unexpected Improvements to Expected Improvement", log_h) so that it stays finite and
// accurate where h underflows (z down to about -1e150). Optional derivative d log h / dz = Phi(z) / h(z).
double log_h(double z, double* dlog = nullptr);

enum class AcqKind { LogEI, UCB, LogPI };
AcqKind acq_kind_from_string(const std::string& s);  // "log_ei", "ucb", "pi"; throws ConfigError

// What this represents: an acquisition function for minimization, as a value to MAXIMIZE.
// - LogEI: log E[max(best - xi - f, 0)] = log sigma + log h((best - xi - mu) / sigma)
// - UCB (lower confidence bound for minimization): -(mu - kappa sigma)
// - LogPI: log P(f < best - xi) = log Phi((best - xi - mu) / sigma)
// mu and sigma are the posterior mean and standard deviation of the latent function (standardized units).
struct Acquisition {
  AcqKind kind = AcqKind::LogEI;
  double best = 0.0;   // incumbent (smallest observed standardized value)
  double xi = 0.0;     // improvement margin
  double kappa = 2.0;  // UCB exploration weight

  // Value from (mu, sigma) with partial derivatives d/dmu and d/dsigma when requested.
  double from_moments(double mu, double sigma, double* d_mu = nullptr, double* d_sigma = nullptr) const;
  // Value at x under `model`; when grad != nullptr it receives d(value)/dx (model.dim() entries).
  double at(const GpModel& model, const double* x, double* grad = nullptr) const;
};

}  // namespace kestrel::tuners::gp
