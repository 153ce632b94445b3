// Gaussian-process regression model of the GP tuner: constant mean + Matérn-5/2 ARD + Gaussian noise; exact
// posterior through a Cholesky factor that grows one point at a time; log marginal likelihood and its fit.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "tuners/gp_kernel.hpp"

namespace kestrel::tuners::gp {

// What this represents: the hyperparameters of one GP, in the coordinates the optimizer works in.
// Packed layout (size dim + 3): [log l_1 .. log l_D, log sf2, log sn2, mean].
struct Hyper {
  Eigen::VectorXd log_ls;
  double log_sf2 = 0.0;
  double log_sn2 = std::log(1e-4);
  double mean = 0.0;

  int dim() const { return static_cast<int>(log_ls.size()); }
  static int packed_size(int dim) { return dim + 3; }
  Eigen::VectorXd pack() const;
  // Requires: v.size() == packed_size(dim).
  static Hyper unpack(const Eigen::VectorXd& v, int dim);
};

// What this represents: the weak priors and the box of the hyperparameter fit (maximum a posteriori).
// Defaults (inputs in the unit cube, outputs standardized):
// - length scales: log l_d ~ Normal(sqrt2 + log(D)/2, sd sqrt3), i.e. the dimension-scaled log-normal prior of Hvarfner,
//   Papenmeier and Nardi (2024, "Vanilla Bayesian optimization performs great in high dimensions"); it prefers
//   smooth models and lets the data ask for short scales. Box: l in [0.01, 100].
// - signal variance: log sf2 ~ Normal(0, sd 2), box [0.01, 100] (standardized outputs have unit variance).
// - noise variance: log sn2 ~ Normal(log 1e-4, sd 3), box [min_noise, 1]: weakly prefers near-noiseless fits,
//   since most tuned objectives are deterministic or nearly so.
// - constant mean: mean ~ Normal(0, sd 1), box [-3, 3].
struct HyperPrior {
  bool enabled = true;
  double ls_sd = 1.7320508075688772;  // sqrt(3)
  double sf2_sd = 2.0;
  double sn2_loc = std::log(1e-4);
  double sn2_sd = 3.0;
  double mean_sd = 1.0;
  double min_noise = 1e-6;

  static double ls_loc(int dim) { return 1.4142135623730951 + 0.5 * std::log(static_cast<double>(dim)); }
  Eigen::VectorXd lower(int dim) const;
  Eigen::VectorXd upper(int dim) const;
};

// Negative log marginal likelihood of y under GP(X; theta), plus the negative log prior when `prior` is given
// (constants dropped from the prior only). theta is Hyper's packed layout.
// Ensures: when grad != nullptr it receives d(value)/d(theta) (analytic). Returns +inf when the covariance cannot
// be factorized even with jitter.
double neg_log_posterior(const RowMatrix& X, const Eigen::VectorXd& y, const Eigen::VectorXd& theta,
                         Eigen::VectorXd* grad, const HyperPrior* prior);

// Options of the multi-start hyperparameter fit.
struct FitOptions {
  int restarts = 3;    // starts: prior centre, short length scales, then draws from the prior
  int max_iters = 60;  // L-BFGS-B iterations per start
  HyperPrior prior;
};

// Maximizes log marginal likelihood + log prior by multi-start L-BFGS-B (LBFGSpp) with analytic gradients.
// Deterministic for a given `seed`. Requires X.rows() == y.size() >= 1.
Hyper fit_hyper(const RowMatrix& X, const Eigen::VectorXd& y, const FitOptions& opt, uint64_t seed);

// What this represents: the posterior of a GP with fixed hyperparameters given the points added so far.
// add() extends the Cholesky factor by one row (O(n^2)) instead of refactorizing (O(n^3)); the tuner uses it to
// add running trials as fantasies. Thread safety: const methods may run concurrently; add() may not.
class GpModel {
 public:
  // Requires: X.rows() == y.size(), X.cols() == h.dim(). Adds jitter to the diagonal until the factorization
  // succeeds (at most 1e-4 * sf2 beyond the noise).
  GpModel(RowMatrix X, Eigen::VectorXd y, const Hyper& h);

  // Adds one observation (x has dim() entries).
  void add(const double* x, double y);

  int size() const { return static_cast<int>(y_.size()); }
  int dim() const { return kernel_.dim(); }
  const Hyper& hyper() const { return hyper_; }
  const Matern52& kernel() const { return kernel_; }
  double noise() const { return sn2_; }
  const Eigen::MatrixXd& chol() const { return L_; }

  // Posterior of the latent function (noise excluded) at every row of Xs: mean and variance (floored at 1e-12).
  void predict(const RowMatrix& Xs, Eigen::VectorXd& mean, Eigen::VectorXd& var) const;
  // Same at one point; when dmean / dvar are non-null they receive the gradients with respect to x (dim() each).
  double predict_one(const double* x, double* var, double* dmean, double* dvar) const;

 private:
  void solve_alpha();

  RowMatrix X_;
  Eigen::VectorXd y_;
  Hyper hyper_;
  Matern52 kernel_;
  double sn2_ = 0.0;  // noise + jitter actually on the diagonal
  Eigen::MatrixXd L_;
  Eigen::VectorXd alpha_;  // K^-1 (y - mean)
};

}  // namespace kestrel::tuners::gp
