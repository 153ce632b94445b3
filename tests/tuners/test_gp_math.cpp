// Tests of the GP tuner's numerics: finite-difference checks of the kernel, log-likelihood, posterior and
// acquisition gradients (random inputs, dimensions 1..10), the posterior against a dense solve, and log-EI tails.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "tuners/gp_acquisition.hpp"
#include "tuners/gp_kernel.hpp"
#include "tuners/gp_model.hpp"
#include "tuners/gp_warp.hpp"

namespace kestrel::tuners::gp {
namespace {

// Central differences with step 1e-6 have truncation error O(h^2 f''') ~ 1e-12 and rounding error
// ~ eps |f| / h ~ 1e-10 |f|; the tolerance 1e-5 (relative to max(1, |g|)) leaves a wide margin over both
// while still catching any wrong term (a wrong factor of 2 or a sign shows up at the 1e-1 level).
constexpr double kStep = 1e-6;
constexpr double kTol = 1e-5;

RowMatrix random_points(int n, int D, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  RowMatrix X(n, D);
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < D; ++d) X(i, d) = u(rng);
  return X;
}

Hyper random_hyper(int D, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Hyper h;
  h.log_ls.resize(D);
  for (int d = 0; d < D; ++d) h.log_ls[d] = std::log(0.3) + 0.8 * u(rng);
  h.log_sf2 = 0.5 * u(rng);
  h.log_sn2 = std::log(1e-2) + u(rng);
  h.mean = 0.3 * u(rng);
  return h;
}

void expect_close(double analytic, double numeric, const std::string& what) {
  EXPECT_NEAR(analytic, numeric, kTol * std::max(1.0, std::fabs(numeric))) << what;
}

TEST(GpKernel, ValueMatchesMaternFormulaAndIsSymmetric) {
  Eigen::VectorXd log_ls(2);
  log_ls << std::log(0.5), std::log(2.0);
  Matern52 k(log_ls, std::log(1.5));
  double a[2] = {0.1, 0.7}, b[2] = {0.4, 0.2};
  double r = std::sqrt(std::pow(0.3 / 0.5, 2) + std::pow(0.5 / 2.0, 2));
  double expect = 1.5 * (1 + std::sqrt(5.0) * r + 5.0 / 3.0 * r * r) * std::exp(-std::sqrt(5.0) * r);
  EXPECT_NEAR(k(a, b), expect, 1e-14);
  EXPECT_DOUBLE_EQ(k(a, b), k(b, a));
  EXPECT_DOUBLE_EQ(k(a, a), 1.5);
}

TEST(GpKernel, HyperparameterAndInputGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(1);
  for (int D = 1; D <= 10; ++D) {
    for (int rep = 0; rep < 5; ++rep) {
      RowMatrix P = random_points(2, D, rng);
      Hyper h = random_hyper(D, rng);
      Matern52 k(h.log_ls, h.log_sf2);
      std::vector<double> g(D + 1), gx(D);
      k.grad_hyper(P.row(0).data(), P.row(1).data(), g.data());
      k.grad_a(P.row(0).data(), P.row(1).data(), gx.data());
      for (int d = 0; d <= D; ++d) {
        Eigen::VectorXd lp = h.log_ls, lm = h.log_ls;
        double sp = h.log_sf2, sm = h.log_sf2;
        if (d < D) {
          lp[d] += kStep;
          lm[d] -= kStep;
        } else {
          sp += kStep;
          sm -= kStep;
        }
        double fd = (Matern52(lp, sp)(P.row(0).data(), P.row(1).data()) -
                     Matern52(lm, sm)(P.row(0).data(), P.row(1).data())) / (2 * kStep);
        expect_close(g[d], fd, "D=" + std::to_string(D) + " hyper " + std::to_string(d));
      }
      for (int d = 0; d < D; ++d) {
        Eigen::RowVectorXd ap = P.row(0), am = P.row(0);
        ap[d] += kStep;
        am[d] -= kStep;
        double fd = (k(ap.data(), P.row(1).data()) - k(am.data(), P.row(1).data())) / (2 * kStep);
        expect_close(gx[d], fd, "D=" + std::to_string(D) + " input " + std::to_string(d));
      }
    }
  }
}

TEST(GpKernel, InputGradientIsZeroAtCoincidentPoints) {
  Eigen::VectorXd log_ls = Eigen::VectorXd::Constant(3, std::log(0.2));
  Matern52 k(log_ls, 0.0);
  double a[3] = {0.3, 0.3, 0.9};
  double g[3];
  k.grad_a(a, a, g);
  for (double v : g) EXPECT_EQ(v, 0.0);
}

TEST(GpLikelihood, GradientWithRespectToAllHyperparametersMatchesFiniteDifferences) {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> nd(0.0, 1.0);
  HyperPrior prior;
  for (int D = 1; D <= 10; ++D) {
    for (int with_prior = 0; with_prior < 2; ++with_prior) {
      int n = 6 + 2 * D;
      RowMatrix X = random_points(n, D, rng);
      Eigen::VectorXd y(n);
      for (int i = 0; i < n; ++i) y[i] = std::sin(3 * X(i, 0)) + 0.1 * nd(rng);
      Eigen::VectorXd theta = random_hyper(D, rng).pack();
      Eigen::VectorXd g;
      const HyperPrior* pr = with_prior ? &prior : nullptr;
      neg_log_posterior(X, y, theta, &g, pr);
      ASSERT_EQ(g.size(), D + 3);
      for (int j = 0; j < theta.size(); ++j) {
        Eigen::VectorXd tp = theta, tm = theta;
        tp[j] += kStep;
        tm[j] -= kStep;
        double fd = (neg_log_posterior(X, y, tp, nullptr, pr) - neg_log_posterior(X, y, tm, nullptr, pr)) / (2 * kStep);
        expect_close(g[j], fd, "D=" + std::to_string(D) + " theta " + std::to_string(j) + " prior " +
                                   std::to_string(with_prior));
      }
    }
  }
}

TEST(GpLikelihood, ValueMatchesDenseFormula) {
  std::mt19937_64 rng(3);
  const int n = 12, D = 3;
  RowMatrix X = random_points(n, D, rng);
  Eigen::VectorXd y = Eigen::VectorXd::LinSpaced(n, -1.0, 1.0);
  Hyper h = random_hyper(D, rng);
  Matern52 k(h.log_ls, h.log_sf2);
  Eigen::MatrixXd K = k.cross(X, X);
  K.diagonal().array() += std::exp(h.log_sn2);
  Eigen::VectorXd r = y.array() - h.mean;
  double expect = 0.5 * r.dot(K.inverse() * r) + 0.5 * std::log(K.determinant()) + 0.5 * n * std::log(2 * M_PI);
  EXPECT_NEAR(neg_log_posterior(X, y, h.pack(), nullptr, nullptr), expect, 1e-9 * std::fabs(expect));
}

TEST(GpPosterior, MeanAndVarianceMatchDenseInverse) {
  std::mt19937_64 rng(4);
  for (int D : {1, 4, 9}) {
    const int n = 15, m = 7;
    RowMatrix X = random_points(n, D, rng), Xs = random_points(m, D, rng);
    Eigen::VectorXd y(n);
    for (int i = 0; i < n; ++i) y[i] = X.row(i).sum() * X(i, 0);
    Hyper h = random_hyper(D, rng);
    GpModel model(X, y, h);
    Matern52 k(h.log_ls, h.log_sf2);
    Eigen::MatrixXd K = k.cross(X, X);
    K.diagonal().array() += std::exp(h.log_sn2);
    Eigen::MatrixXd Kinv = K.inverse();
    Eigen::MatrixXd Ks = k.cross(X, Xs);
    Eigen::VectorXd mean_ref = (Ks.transpose() * Kinv * (y.array() - h.mean).matrix()).array() + h.mean;
    Eigen::VectorXd var_ref = (k.sf2() - (Ks.transpose() * Kinv * Ks).diagonal().array()).matrix();
    Eigen::VectorXd mean, var;
    model.predict(Xs, mean, var);
    for (int j = 0; j < m; ++j) {
      EXPECT_NEAR(mean[j], mean_ref[j], 1e-8) << "D=" << D;
      EXPECT_NEAR(var[j], std::max(var_ref[j], 1e-12), 1e-8) << "D=" << D;
      double v1 = 0.0;
      double m1 = model.predict_one(Xs.row(j).data(), &v1, nullptr, nullptr);
      EXPECT_NEAR(m1, mean_ref[j], 1e-8);
      EXPECT_NEAR(v1, std::max(var_ref[j], 1e-12), 1e-8);
    }
  }
}

TEST(GpPosterior, IncrementalCholeskyEqualsRefactorization) {
  std::mt19937_64 rng(5);
  const int n = 10, D = 4;
  RowMatrix X = random_points(n + 3, D, rng);
  Eigen::VectorXd y = Eigen::VectorXd::LinSpaced(n + 3, 0.0, 2.0);
  Hyper h = random_hyper(D, rng);
  GpModel grown(X.topRows(n), y.head(n), h);
  for (int i = n; i < n + 3; ++i) grown.add(X.row(i).data(), y[i]);
  GpModel full(X, y, h);
  EXPECT_LT((grown.chol() - full.chol()).cwiseAbs().maxCoeff(), 1e-10);
  RowMatrix Xs = random_points(5, D, rng);
  Eigen::VectorXd m1, v1, m2, v2;
  grown.predict(Xs, m1, v1);
  full.predict(Xs, m2, v2);
  EXPECT_LT((m1 - m2).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((v1 - v2).cwiseAbs().maxCoeff(), 1e-10);
}

TEST(GpPosterior, MeanAndVarianceInputGradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(6);
  for (int D = 1; D <= 10; ++D) {
    RowMatrix X = random_points(8 + D, D, rng);
    Eigen::VectorXd y(X.rows());
    for (int i = 0; i < X.rows(); ++i) y[i] = std::cos(4 * X(i, 0)) + X.row(i).squaredNorm();
    GpModel model(X, y, random_hyper(D, rng));
    RowMatrix x = random_points(1, D, rng);
    std::vector<double> dm(D), dv(D);
    double var = 0;
    model.predict_one(x.data(), &var, dm.data(), dv.data());
    for (int d = 0; d < D; ++d) {
      RowMatrix xp = x, xm = x;
      xp(0, d) += kStep;
      xm(0, d) -= kStep;
      double vp = 0, vm = 0;
      double mp = model.predict_one(xp.data(), &vp, nullptr, nullptr);
      double mm = model.predict_one(xm.data(), &vm, nullptr, nullptr);
      expect_close(dm[d], (mp - mm) / (2 * kStep), "mean D=" + std::to_string(D));
      expect_close(dv[d], (vp - vm) / (2 * kStep), "var D=" + std::to_string(D));
    }
  }
}

TEST(GpFit, RecoversShortLengthScaleOnRelevantDimensionOnly) {
  // y depends on x0 only: the fit should give dimension 0 a much shorter length scale than dimension 1.
  std::mt19937_64 rng(7);
  RowMatrix X = random_points(40, 2, rng);
  Eigen::VectorXd y(40);
  for (int i = 0; i < 40; ++i) y[i] = std::sin(6 * X(i, 0));
  y = (y.array() - y.mean()) / std::sqrt((y.array() - y.mean()).square().mean());
  Hyper h = fit_hyper(X, y, FitOptions{}, 11);
  EXPECT_LT(h.log_ls[0] + 1.5, h.log_ls[1]);
  // And the fit is no worse than the defaults it starts from.
  HyperPrior prior;
  Hyper start;
  start.log_ls = Eigen::VectorXd::Constant(2, HyperPrior::ls_loc(2));
  EXPECT_LT(neg_log_posterior(X, y, h.pack(), nullptr, &prior), neg_log_posterior(X, y, start.pack(), nullptr, &prior));
}

TEST(GpAcquisition, LogHMatchesDirectFormulaWhereRepresentable) {
  for (double z = -30.0; z <= 5.0; z += 0.37) {
    double Phi = 0.5 * std::erfc(-z / std::sqrt(2.0));
    double phi = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
    double h = phi + z * Phi;
    if (h < 1e-280 || z < -8) continue;  // beyond ~-8 the direct formula loses every digit to cancellation
    EXPECT_NEAR(log_h(z), std::log(h), 1e-8 * std::max(1.0, std::fabs(std::log(h)))) << "z=" << z;
  }
}

TEST(GpAcquisition, LogHIsFiniteAndAsymptoticallyCorrectDeepInTheTail) {
  // For z -> -inf, h(z) ~ phi(z) / z^2, i.e. log h ~ -z^2/2 - log(sqrt(2 pi)) - 2 log|z|.
  for (double z : {-10.0, -50.0, -99.0, -101.0, -1e3, -1e5, -1e10}) {
    double v = log_h(z);
    ASSERT_TRUE(std::isfinite(v)) << z;
    double asym = -0.5 * z * z - 0.5 * std::log(2 * M_PI) - 2 * std::log(-z);
    EXPECT_NEAR(v, asym, 3.5 / (z * z) + 1e-12 * std::fabs(asym)) << z;  // next term: log(1 - 3/z^2)
  }
  // Continuity across the branch points (-1 and -100).
  EXPECT_NEAR(log_h(-1.0 - 1e-12), log_h(-1.0 + 1e-12), 1e-9);
  EXPECT_NEAR(log_h(-100.0 - 1e-9), log_h(-100.0 + 1e-9), 1e-6);
  // Monotone: more expected improvement for larger z.
  double prev = -std::numeric_limits<double>::infinity();
  for (double z = -200.0; z < 5.0; z += 0.5) {
    double v = log_h(z);
    EXPECT_GT(v, prev) << z;
    prev = v;
  }
}

TEST(GpAcquisition, LogHAndLogNdtrDerivativesMatchFiniteDifferences) {
  for (double z : {-150.0, -60.0, -20.0, -4.5, -1.2, -0.7, 0.0, 0.8, 3.0}) {
    double d = 0.0;
    log_h(z, &d);
    double h = 1e-6 * std::max(1.0, std::fabs(z));
    expect_close(d, (log_h(z + h) - log_h(z - h)) / (2 * h), "log_h z=" + std::to_string(z));
    log_ndtr(z, &d);
    expect_close(d, (log_ndtr(z + h) - log_ndtr(z - h)) / (2 * h), "log_ndtr z=" + std::to_string(z));
  }
}

TEST(GpAcquisition, GradientOfEveryAcquisitionMatchesFiniteDifferences) {
  std::mt19937_64 rng(8);
  for (AcqKind kind : {AcqKind::LogEI, AcqKind::UCB, AcqKind::LogPI}) {
    for (int D = 1; D <= 10; ++D) {
      RowMatrix X = random_points(10 + D, D, rng);
      Eigen::VectorXd y(X.rows());
      for (int i = 0; i < X.rows(); ++i) y[i] = X.row(i).squaredNorm() - 0.3 * D;
      GpModel model(X, y, random_hyper(D, rng));
      Acquisition acq;
      acq.kind = kind;
      acq.best = y.minCoeff();
      for (int rep = 0; rep < 3; ++rep) {
        RowMatrix x = random_points(1, D, rng);
        std::vector<double> g(D);
        acq.at(model, x.data(), g.data());
        for (int d = 0; d < D; ++d) {
          RowMatrix xp = x, xm = x;
          xp(0, d) += kStep;
          xm(0, d) -= kStep;
          double fd = (acq.at(model, xp.data()) - acq.at(model, xm.data())) / (2 * kStep);
          expect_close(g[d], fd, "kind " + std::to_string(static_cast<int>(kind)) + " D=" + std::to_string(D));
        }
      }
    }
  }
}

TEST(GpAcquisition, LogEiKeepsRankingWherePlainEiUnderflows) {
  // Two points far below the incumbent's improvement threshold: plain EI is 0 for both, log-EI still prefers
  // the one with the better mean (which is what lets the optimizer climb out of flat regions).
  Acquisition acq;
  acq.best = 0.0;
  double a = acq.from_moments(40.0, 1.0), b = acq.from_moments(45.0, 1.0);
  EXPECT_TRUE(std::isfinite(a));
  EXPECT_TRUE(std::isfinite(b));
  EXPECT_GT(a, b);
  double plain = 1.0 * (std::exp(-0.5 * 40.0 * 40.0) / std::sqrt(2 * M_PI) - 40.0 * 0.5 * std::erfc(40.0 / std::sqrt(2.0)));
  EXPECT_LE(plain, 1e-300);
}

TEST(GpWarp, YeoJohnsonIsIdentityAtLambdaOneAndMonotoneForAllLambdas) {
  for (double y : {-3.0, -0.5, 0.0, 0.7, 12.0}) EXPECT_NEAR(yeo_johnson(y, 1.0), y, 1e-12);
  for (double l : {0.0, 0.3, 1.0, 1.7, 2.0})
    for (double y = -5.0; y < 5.0; y += 0.25) EXPECT_LT(yeo_johnson(y, l), yeo_johnson(y + 0.25, l)) << l << " " << y;
}

TEST(GpWarp, CompressesAHeavyUpperTailAndKeepsTheOrder) {
  // Log-normal-like losses: a few values far above the rest. After warping the largest standardized value is much
  // closer to the bulk, and the ranking (hence the argmin) is unchanged.
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd(0.0, 1.0);
  Eigen::VectorXd z(60);
  for (int i = 0; i < 60; ++i) z[i] = std::exp(2.0 * nd(rng));
  z = (z.array() - z.mean()) / std::sqrt((z.array() - z.mean()).square().sum() / 59);
  Eigen::VectorXd w = z;
  double lambda = warp_outputs(w);
  EXPECT_LT(lambda, 0.5);
  EXPECT_LT(w.maxCoeff(), 0.5 * z.maxCoeff());
  for (int i = 0; i < 60; ++i)
    for (int j = 0; j < 60; ++j)
      if (z[i] < z[j]) EXPECT_LT(w[i], w[j]);
  EXPECT_NEAR(w.mean(), 0.0, 1e-12);
}

TEST(GpWarp, LeavesSymmetricDataNearlyUnchanged) {
  Eigen::VectorXd z = Eigen::VectorXd::LinSpaced(41, -1.7, 1.7);
  Eigen::VectorXd w = z;
  double lambda = warp_outputs(w);
  EXPECT_NEAR(lambda, 1.0, 0.15);
}

}  // namespace
}  // namespace kestrel::tuners::gp
