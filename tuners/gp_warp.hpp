// Output warping of the GP tuner: a Yeo-Johnson power transform with its exponent fitted by maximum likelihood,
// so that heavy-tailed objectives (a few huge losses among many moderate ones) do not flatten the model.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Dense>

namespace kestrel::tuners::gp {

// Yeo & Johnson (2000): a monotone increasing power transform defined for every real y; lambda = 1 is the
// identity, lambda < 1 compresses the upper tail (lambda = 0 is log(1 + y) for y >= 0).
inline double yeo_johnson(double y, double lambda) {
  if (y >= 0) return std::fabs(lambda) < 1e-12 ? std::log1p(y) : (std::pow(y + 1.0, lambda) - 1.0) / lambda;
  double l2 = 2.0 - lambda;
  return std::fabs(l2) < 1e-12 ? -std::log1p(-y) : -(std::pow(1.0 - y, l2) - 1.0) / l2;
}

// Profile log-likelihood of lambda for data z under "yeo_johnson(z, lambda) is normal" (constants dropped).
inline double yeo_johnson_loglik(const Eigen::VectorXd& z, double lambda) {
  const Eigen::Index n = z.size();
  Eigen::VectorXd t(n);
  double jac = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    t[i] = yeo_johnson(z[i], lambda);
    jac += (z[i] >= 0 ? 1.0 : -1.0) * std::log1p(std::fabs(z[i]));
  }
  double var = (t.array() - t.mean()).square().mean();
  if (!(var > 0.0) || !std::isfinite(var)) return -INFINITY;
  return -0.5 * static_cast<double>(n) * std::log(var) + (lambda - 1.0) * jac;
}

// What this does: y -> yeo_johnson(z, lambda*) standardized, where z = (y - median) / s with the robust scale
// s = IQR / 1.349 (the sd for normal data; the sd when the IQR is 0). Centring and scaling robustly matters: after
// plain standardization a few huge values squeeze the bulk into a sliver near 0, where every power transform is
// nearly linear, so no lambda could spread it out. lambda* in [-2, 2] maximizes the profile likelihood (grid of
// step 0.05, then golden section). lambda < 0 saturates the upper tail (all very bad values look alike, which is
// harmless when minimizing) and spreads the lower one, where the optimum is.
// Ensures: a strictly increasing map of the input (the argmin is unchanged), mean 0 and sd 1 unless all values are
// equal; returns lambda*.
inline double warp_outputs(Eigen::VectorXd& z) {
  if (z.size() < 3) return 1.0;
  {
    std::vector<double> v(z.data(), z.data() + z.size());
    std::sort(v.begin(), v.end());
    auto q = [&](double p) {
      double pos = p * static_cast<double>(v.size() - 1);
      size_t lo = static_cast<size_t>(pos);
      size_t hi = std::min(v.size() - 1, lo + 1);
      return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
    };
    double med = q(0.5), scale = (q(0.75) - q(0.25)) / 1.349;
    if (!(scale > 0.0)) scale = std::sqrt((z.array() - z.mean()).square().mean());
    if (!(scale > 0.0)) return 1.0;
    z = (z.array() - med) / scale;
  }
  double best_l = 1.0, best_v = yeo_johnson_loglik(z, 1.0);
  for (double l = -2.0; l <= 2.0 + 1e-9; l += 0.05) {
    double v = yeo_johnson_loglik(z, l);
    if (v > best_v + 1e-12) {
      best_v = v;
      best_l = l;
    }
  }
  double a = std::max(-2.0, best_l - 0.05), b = std::min(2.0, best_l + 0.05);
  const double g = 0.6180339887498949;
  for (int it = 0; it < 30; ++it) {
    double c = b - g * (b - a), d = a + g * (b - a);
    if (yeo_johnson_loglik(z, c) > yeo_johnson_loglik(z, d))
      b = d;
    else
      a = c;
  }
  double l = 0.5 * (a + b);
  if (yeo_johnson_loglik(z, l) < best_v) l = best_l;
  for (Eigen::Index i = 0; i < z.size(); ++i) z[i] = yeo_johnson(z[i], l);
  double m = z.mean();
  double sd = std::sqrt((z.array() - m).square().sum() / std::max<double>(1.0, static_cast<double>(z.size() - 1)));
  if (!(sd > 0.0) || !std::isfinite(sd)) sd = 1.0;
  z = (z.array() - m) / sd;
  return l;
}

}  // namespace kestrel::tuners::gp
