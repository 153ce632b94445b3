// Bounded minimization for the GP tuner: a thin wrapper over LBFGSpp's L-BFGS-B (Debian liblbfgspp-dev) that
// keeps the best point ever evaluated, so a line-search failure (LBFGSpp throws) still returns a usable result.
#pragma once

#include <cmath>
#include <exception>
#include <limits>

#include <Eigen/Dense>
#include <LBFGSB.h>

namespace kestrel::tuners::gp {

struct LbfgsOptions {
  int max_iters = 50;
  double grad_tol = 1e-5;   // projected-gradient infinity norm
  double rel_f_tol = 1e-9;  // relative change of f over one iteration
};

// Minimizes f over the box [lo, hi] from x (projected into the box first).
// f(x, grad) returns the value and writes the gradient; a non-finite value is treated as a wall (+1e300).
// Ensures: x holds the best point evaluated and the return value is f there (+inf if none was finite).
template <typename F>
double minimize_box(F&& f, Eigen::VectorXd& x, const Eigen::VectorXd& lo, const Eigen::VectorXd& hi,
                    const LbfgsOptions& opt) {
  x = x.cwiseMax(lo).cwiseMin(hi);
  double best_f = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_x = x;
  auto wrapped = [&](const Eigen::VectorXd& z, Eigen::VectorXd& g) -> double {
    double v = f(z, g);
    if (!std::isfinite(v) || !g.allFinite()) {
      // Push the line search back without poisoning the quasi-Newton memory with NaN.
      g.setZero();
      return 1e300;
    }
    if (v < best_f) {
      best_f = v;
      best_x = z;
    }
    return v;
  };
  if (x.size() == 0) {
    Eigen::VectorXd g(0);
    return f(x, g);
  }
  LBFGSpp::LBFGSBParam<double> param;
  param.max_iterations = opt.max_iters;
  param.epsilon = opt.grad_tol;
  param.epsilon_rel = 0.0;
  param.past = 1;
  param.delta = opt.rel_f_tol;
  param.max_linesearch = 30;
  LBFGSpp::LBFGSBSolver<double> solver(param);
  Eigen::VectorXd z = x;
  double fz = 0.0;
  try {
    solver.minimize(wrapped, z, fz, lo, hi);
  } catch (const std::exception&) {
    // Line search or subspace failure near a kink or a bound: the best point seen so far stands.
  }
  x = best_x;
  return best_f;
}

}  // namespace kestrel::tuners::gp
