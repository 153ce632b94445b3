// Acquisition functions of the GP tuner and the special functions behind log-EI, written so that they stay
// finite and accurate far in the tails (where plain EI underflows to 0 and gives the optimizer no gradient).
#include "tuners/gp_acquisition.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "common/error.hpp"

namespace kestrel::tuners::gp {
namespace {

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kLogSqrt2Pi = 0.91893853320467274178;   // log(2 pi) / 2
constexpr double kLogSqrtPiOver2 = 0.22579135264472743236;  // log(pi / 2) / 2
constexpr double kLog2 = 0.69314718055994530942;

// log(1 - exp(x)) for x < 0 (Maechler's two-branch rule).
double log1mexp(double x) { return x > -kLog2 ? std::log(-std::expm1(x)) : std::log1p(-std::exp(x)); }

}  // namespace

double erfcx(double x) {
  if (x < 25.0) return std::exp(x * x) * std::erfc(x);
  // Asymptotic series 1/(x sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2x^2)^k; at x >= 25 the sixth term is < 1e-12.
  double t = 1.0 / (2.0 * x * x);
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 6; ++k) {
    term *= -(2.0 * k - 1.0) * t;
    sum += term;
  }
  return sum / (x * 1.7724538509055160273);
}

double log_ndtr(double z, double* dlog) {
  double v;
  if (z > -5.0) {
    v = std::log(0.5 * std::erfc(-z * kInvSqrt2));
  } else {
    // Phi(z) = erfcx(-z/sqrt2) exp(-z^2/2) / 2, kept in log space.
    v = std::log(0.5 * erfcx(-z * kInvSqrt2)) - 0.5 * z * z;
  }
  if (dlog) *dlog = std::exp(-0.5 * z * z - kLogSqrt2Pi - v);  // phi / Phi
  return v;
}

double log_h(double z, double* dlog) {
  double v;
  if (z > -1.0) {
    double Phi = 0.5 * std::erfc(-z * kInvSqrt2);
    double h = std::exp(-0.5 * z * z - kLogSqrt2Pi) + z * Phi;
    v = std::log(h);
    if (dlog) *dlog = Phi / h;
    return v;
  }
  if (z > -100.0) {
    // h(z) = phi(z) (1 - sqrt(pi/2) |z| erfcx(|z|/sqrt2)); the bracket is evaluated in log space.
    v = -0.5 * z * z - kLogSqrt2Pi + log1mexp(std::log(erfcx(-z * kInvSqrt2) * -z) + kLogSqrtPiOver2);
  } else {
    // Far tail: h(z) = phi(z) / z^2 (1 - 3/z^2 + 15/z^4 - 105/z^6 + 945/z^8 - ...), error < 1e-15 here. This
    // replaces the cancellation-prone bracket above, whose relative error grows like 1e-16 z^2.
    double w = 1.0 / (z * z);
    double series = 1.0 + w * (-3.0 + w * (15.0 + w * (-105.0 + w * 945.0)));
    v = -0.5 * z * z - kLogSqrt2Pi - std::log(z * z) + std::log(series);
  }
  if (dlog) {
    double lp = log_ndtr(z);
    *dlog = std::exp(lp - v);
  }
  return v;
}

AcqKind acq_kind_from_string(const std::string& s) {
  if (s == "log_ei" || s == "ei") return AcqKind::LogEI;
  if (s == "ucb") return AcqKind::UCB;
  if (s == "pi" || s == "log_pi") return AcqKind::LogPI;
  throw ConfigError("tuner 'gp': acquisition '" + s + "' is unknown (valid: log_ei, ucb, pi)");
}

double Acquisition::from_moments(double mu, double sigma, double* d_mu, double* d_sigma) const {
  switch (kind) {
    case AcqKind::UCB:
      if (d_mu) *d_mu = -1.0;
      if (d_sigma) *d_sigma = kappa;
      return -mu + kappa * sigma;
    case AcqKind::LogEI: {
      double z = (best - xi - mu) / sigma;
      double dz = 0.0;
      double v = log_h(z, &dz) + std::log(sigma);
      if (d_mu) *d_mu = -dz / sigma;
      if (d_sigma) *d_sigma = -dz * z / sigma + 1.0 / sigma;
      return v;
    }
    case AcqKind::LogPI: {
      double z = (best - xi - mu) / sigma;
      double dz = 0.0;
      double v = log_ndtr(z, &dz);
      if (d_mu) *d_mu = -dz / sigma;
      if (d_sigma) *d_sigma = -dz * z / sigma;
      return v;
    }
  }
  return 0.0;
}

double Acquisition::at(const GpModel& model, const double* x, double* grad) const {
  const int D = model.dim();
  double var = 0.0;
  if (!grad) {
    double mu = model.predict_one(x, &var, nullptr, nullptr);
    return from_moments(mu, std::sqrt(var));
  }
  std::vector<double> dm(D), dv(D);
  double mu = model.predict_one(x, &var, dm.data(), dv.data());
  double sigma = std::sqrt(var);
  double a_mu = 0.0, a_sigma = 0.0;
  double v = from_moments(mu, sigma, &a_mu, &a_sigma);
  // d sigma / dx = d var / dx / (2 sigma)
  for (int d = 0; d < D; ++d) grad[d] = a_mu * dm[d] + a_sigma * dv[d] / (2.0 * sigma);
  return v;
}

}  // namespace kestrel::tuners::gp
