// GP regression for the GP tuner: marginal likelihood with analytic gradients, the multi-start MAP fit of the
// hyperparameters, and the exact posterior with a Cholesky factor extended one point at a time.
#include "tuners/gp_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tuners/gp_lbfgs.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners::gp {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;
constexpr double kLogLsMin = -4.605170185988091;  // log 0.01
constexpr double kLogLsMax = 4.605170185988091;   // log 100
constexpr double kLogSf2Min = -4.605170185988091;
constexpr double kLogSf2Max = 4.605170185988091;
constexpr double kMeanBox = 3.0;

// Cholesky of K + jitter I, trying growing jitter only when the plain factorization fails (near-duplicate
// points with a tiny noise). Returns the jitter used, or a negative value when every attempt failed.
double factorize(Eigen::MatrixXd& K, double sf2, Eigen::LLT<Eigen::MatrixXd>& llt) {
  llt.compute(K);
  if (llt.info() == Eigen::Success) return 0.0;
  double added = 0.0;
  for (double j = 1e-10 * sf2; j <= 1e-4 * sf2 * 1.0001; j *= 10.0) {
    K.diagonal().array() += j - added;
    added = j;
    llt.compute(K);
    if (llt.info() == Eigen::Success) return added;
  }
  return -1.0;
}

}  // namespace

Eigen::VectorXd Hyper::pack() const {
  const int D = dim();
  Eigen::VectorXd v(packed_size(D));
  v.head(D) = log_ls;
  v[D] = log_sf2;
  v[D + 1] = log_sn2;
  v[D + 2] = mean;
  return v;
}

Hyper Hyper::unpack(const Eigen::VectorXd& v, int dim) {
  Hyper h;
  h.log_ls = v.head(dim);
  h.log_sf2 = v[dim];
  h.log_sn2 = v[dim + 1];
  h.mean = v[dim + 2];
  return h;
}

Eigen::VectorXd HyperPrior::lower(int dim) const {
  Eigen::VectorXd lo(Hyper::packed_size(dim));
  lo.head(dim).setConstant(kLogLsMin);
  lo[dim] = kLogSf2Min;
  lo[dim + 1] = std::log(min_noise);
  lo[dim + 2] = -kMeanBox;
  return lo;
}

Eigen::VectorXd HyperPrior::upper(int dim) const {
  Eigen::VectorXd hi(Hyper::packed_size(dim));
  hi.head(dim).setConstant(kLogLsMax);
  hi[dim] = kLogSf2Max;
  hi[dim + 1] = 0.0;  // noise variance at most the (standardized) output variance
  hi[dim + 2] = kMeanBox;
  return hi;
}

double neg_log_posterior(const RowMatrix& X, const Eigen::VectorXd& y, const Eigen::VectorXd& theta,
                         Eigen::VectorXd* grad, const HyperPrior* prior) {
  const int n = static_cast<int>(X.rows());
  const int D = static_cast<int>(X.cols());
  Hyper h = Hyper::unpack(theta, D);
  Matern52 k(h.log_ls, h.log_sf2);
  const double sf2 = k.sf2();
  const double sn2 = std::exp(h.log_sn2);

  // Kf and G = -2 dk/dr^2 (reused by the length-scale gradient) in one pass over the pairs.
  Eigen::MatrixXd K(n, n), G;
  if (grad) G.resize(n, n);
  for (int i = 0; i < n; ++i) {
    K(i, i) = sf2 + sn2;
    if (grad) G(i, i) = 0.0;
    for (int j = i + 1; j < n; ++j) {
      double s = k.r2(X.row(i).data(), X.row(j).data());
      double r = std::sqrt(s);
      double e = std::exp(-kSqrt5 * r);
      double kv = sf2 * (1.0 + kSqrt5 * r + (5.0 / 3.0) * s) * e;
      K(i, j) = kv;
      K(j, i) = kv;
      if (grad) {
        double g = (5.0 / 3.0) * sf2 * (1.0 + kSqrt5 * r) * e;
        G(i, j) = g;
        G(j, i) = g;
      }
    }
  }
  Eigen::LLT<Eigen::MatrixXd> llt;
  Eigen::MatrixXd Kfac = K;  // K itself stays intact: its off-diagonal is Kf, used by the gradient
  double jitter = factorize(Kfac, sf2, llt);
  if (jitter < 0.0) return std::numeric_limits<double>::infinity();

  Eigen::VectorXd r = y.array() - h.mean;
  Eigen::VectorXd alpha = llt.solve(r);
  const auto& L = llt.matrixLLT();
  double logdet = 0.0;
  for (int i = 0; i < n; ++i) logdet += std::log(L(i, i));
  double value = 0.5 * r.dot(alpha) + logdet + 0.5 * n * kLog2Pi;

  if (grad) {
    grad->setZero(Hyper::packed_size(D));
    // d nll / d theta = 1/2 tr((K^-1 - alpha alpha^T) dK/dtheta)
    // K^-1 = L^-T L^-1 from the triangular inverse (cheaper than solving against the identity); only its lower
    // triangle is formed and read.
    Eigen::MatrixXd Linv = Eigen::MatrixXd::Identity(n, n);
    llt.matrixL().solveInPlace(Linv);
    Eigen::MatrixXd W = Eigen::MatrixXd::Zero(n, n);
    W.selfadjointView<Eigen::Lower>().rankUpdate(Linv.transpose());
    Eigen::VectorXd gl = Eigen::VectorXd::Zero(D);
    double gsf2 = 0.0, trW = 0.0;
    for (int j = 0; j < n; ++j) {
      double wjj = W(j, j) - alpha[j] * alpha[j];
      trW += wjj;
      gsf2 += 0.5 * wjj * sf2;
      const double* b = X.row(j).data();
      for (int i = j + 1; i < n; ++i) {  // column-major: walk down column j of the lower triangle
        double w = W(i, j) - alpha[i] * alpha[j];
        gsf2 += w * K(i, j);  // both triangles: 2 * 1/2
        double wg = w * G(i, j);
        const double* a = X.row(i).data();
        for (int d = 0; d < D; ++d) {
          double t = a[d] - b[d];
          gl[d] += wg * t * t;
        }
      }
    }
    grad->head(D) = gl.cwiseProduct(k.inv_ls2());
    (*grad)[D] = gsf2;
    (*grad)[D + 1] = 0.5 * sn2 * trW;
    (*grad)[D + 2] = -alpha.sum();
  }

  if (prior && prior->enabled) {
    const double mu_l = HyperPrior::ls_loc(D);
    const double vl = prior->ls_sd * prior->ls_sd;
    const double vs = prior->sf2_sd * prior->sf2_sd;
    const double vn = prior->sn2_sd * prior->sn2_sd;
    const double vm = prior->mean_sd * prior->mean_sd;
    for (int d = 0; d < D; ++d) {
      double t = h.log_ls[d] - mu_l;
      value += 0.5 * t * t / vl;
      if (grad) (*grad)[d] += t / vl;
    }
    value += 0.5 * h.log_sf2 * h.log_sf2 / vs;
    double tn = h.log_sn2 - prior->sn2_loc;
    value += 0.5 * tn * tn / vn;
    value += 0.5 * h.mean * h.mean / vm;
    if (grad) {
      (*grad)[D] += h.log_sf2 / vs;
      (*grad)[D + 1] += tn / vn;
      (*grad)[D + 2] += h.mean / vm;
    }
  }
  return value;
}

Hyper fit_hyper(const RowMatrix& X, const Eigen::VectorXd& y, const FitOptions& opt, uint64_t seed) {
  const int D = static_cast<int>(X.cols());
  const HyperPrior& prior = opt.prior;
  Eigen::VectorXd lo = prior.lower(D), hi = prior.upper(D);
  Rng rng(seed);
  auto start = [&](int s) {
    Hyper h;
    h.log_sf2 = 0.0;
    h.log_sn2 = std::max(std::log(1e-3), std::log(prior.min_noise));
    h.mean = 0.0;
    if (s == 0) {
      h.log_ls = Eigen::VectorXd::Constant(D, HyperPrior::ls_loc(D));
    } else if (s == 1) {
      h.log_ls = Eigen::VectorXd::Constant(D, std::log(0.2));
    } else {
      h.log_ls.resize(D);
      for (int d = 0; d < D; ++d) h.log_ls[d] = HyperPrior::ls_loc(D) + prior.ls_sd * rng.normal();
      h.log_sf2 = 0.5 * rng.normal();
      h.log_sn2 = prior.sn2_loc + rng.normal();
    }
    return h.pack();
  };
  LbfgsOptions lopt;
  lopt.max_iters = opt.max_iters;
  lopt.grad_tol = 1e-4;
  lopt.rel_f_tol = 1e-7;
  auto f = [&](const Eigen::VectorXd& theta, Eigen::VectorXd& g) {
    return neg_log_posterior(X, y, theta, &g, &prior);
  };
  double best = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_theta = start(0).cwiseMax(lo).cwiseMin(hi);
  for (int s = 0; s < std::max(1, opt.restarts); ++s) {
    Eigen::VectorXd theta = start(s);
    double v = minimize_box(f, theta, lo, hi, lopt);
    if (v < best) {
      best = v;
      best_theta = theta;
    }
  }
  return Hyper::unpack(best_theta, D);
}

GpModel::GpModel(RowMatrix X, Eigen::VectorXd y, const Hyper& h)
    : X_(std::move(X)), y_(std::move(y)), hyper_(h), kernel_(h.log_ls, h.log_sf2) {
  const int n = size();
  Eigen::MatrixXd K(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) {
      double kv = kernel_(X_.row(i).data(), X_.row(j).data());
      K(i, j) = kv;
      K(j, i) = kv;
    }
    K(i, i) = kernel_.sf2();
  }
  sn2_ = std::exp(h.log_sn2);
  K.diagonal().array() += sn2_;
  Eigen::LLT<Eigen::MatrixXd> llt;
  double jitter = factorize(K, kernel_.sf2(), llt);
  if (jitter < 0.0) {
    // Last resort: a noise level at which any kernel matrix is well conditioned.
    sn2_ += 1e-2 * kernel_.sf2();
    K.diagonal().array() += 1e-2 * kernel_.sf2();
    llt.compute(K);
  } else {
    sn2_ += jitter;
  }
  L_ = llt.matrixL();
  solve_alpha();
}

void GpModel::solve_alpha() {
  Eigen::VectorXd r = y_.array() - hyper_.mean;
  auto Lv = L_.triangularView<Eigen::Lower>();
  alpha_ = Lv.solve(r);
  Lv.transpose().solveInPlace(alpha_);
}

void GpModel::add(const double* x, double y) {
  const int n = size();
  const int D = dim();
  Eigen::VectorXd kx(n);
  for (int i = 0; i < n; ++i) kx[i] = kernel_(X_.row(i).data(), x);
  Eigen::VectorXd l = L_.triangularView<Eigen::Lower>().solve(kx);
  double d2 = kernel_.sf2() + sn2_ - l.squaredNorm();
  // A point on top of an existing one leaves (numerically) nothing; keep the factor positive definite.
  d2 = std::max(d2, 1e-12 * kernel_.sf2());
  L_.conservativeResize(n + 1, n + 1);
  L_.row(n).head(n) = l.transpose();
  L_.col(n).setZero();
  L_(n, n) = std::sqrt(d2);
  X_.conservativeResize(n + 1, D);
  for (int d = 0; d < D; ++d) X_(n, d) = x[d];
  y_.conservativeResize(n + 1);
  y_[n] = y;
  solve_alpha();
}

void GpModel::predict(const RowMatrix& Xs, Eigen::VectorXd& mean, Eigen::VectorXd& var) const {
  Eigen::MatrixXd Ks = kernel_.cross(X_, Xs);  // n x m
  mean = (Ks.transpose() * alpha_).array() + hyper_.mean;
  L_.triangularView<Eigen::Lower>().solveInPlace(Ks);
  var = (kernel_.sf2() - Ks.colwise().squaredNorm().transpose().array()).max(1e-12);
}

double GpModel::predict_one(const double* x, double* var, double* dmean, double* dvar) const {
  const int n = size();
  const int D = dim();
  Eigen::VectorXd kx(n);
  for (int i = 0; i < n; ++i) kx[i] = kernel_(x, X_.row(i).data());
  double mean = hyper_.mean + kx.dot(alpha_);
  Eigen::VectorXd v = L_.triangularView<Eigen::Lower>().solve(kx);
  double raw_var = kernel_.sf2() - v.squaredNorm();
  double vv = std::max(raw_var, 1e-12);
  if (var) *var = vv;
  if (dmean || dvar) {
    Eigen::VectorXd beta;
    if (dvar) beta = L_.triangularView<Eigen::Lower>().transpose().solve(v);  // K^-1 k
    Eigen::VectorXd gm = Eigen::VectorXd::Zero(D), gv = Eigen::VectorXd::Zero(D);
    std::vector<double> gk(D);
    for (int i = 0; i < n; ++i) {
      kernel_.grad_a(x, X_.row(i).data(), gk.data());
      for (int d = 0; d < D; ++d) {
        gm[d] += alpha_[i] * gk[d];
        if (dvar) gv[d] += beta[i] * gk[d];
      }
    }
    if (dmean)
      for (int d = 0; d < D; ++d) dmean[d] = gm[d];
    if (dvar) {
      bool floored = raw_var < 1e-12;
      for (int d = 0; d < D; ++d) dvar[d] = floored ? 0.0 : -2.0 * gv[d];
    }
  }
  return mean;
}

}  // namespace kestrel::tuners::gp
