// Matérn-5/2 kernel with one length scale per input dimension (ARD), for the Gaussian-process tuner:
// values, gradients with respect to the log hyperparameters, and gradients with respect to an input.
#pragma once

#include <cmath>

#include <Eigen/Dense>

namespace kestrel::tuners::gp {

// Row-major so that one point (one row) is contiguous and can be passed as a pointer.
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

inline constexpr double kSqrt5 = 2.2360679774997896964;

// What this represents: k(a, b) = sf2 (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r), with
// r^2 = sum_d ((a_d - b_d) / l_d)^2. The hyperparameters the optimizer sees are log l_d and log sf2.
// Everything is written in terms of r^2 so that no derivative divides by r (r = 0 on the diagonal).
// Thread safety: immutable after construction; safe to share.
class Matern52 {
 public:
  Matern52() = default;
  // Requires: log_ls finite (one per dimension), log_sf2 finite.
  Matern52(const Eigen::VectorXd& log_ls, double log_sf2)
      : inv_ls2_((-2.0 * log_ls.array()).exp().matrix()), sf2_(std::exp(log_sf2)) {}

  int dim() const { return static_cast<int>(inv_ls2_.size()); }
  double sf2() const { return sf2_; }
  const Eigen::VectorXd& inv_ls2() const { return inv_ls2_; }

  double r2(const double* a, const double* b) const {
    double s = 0.0;
    for (int d = 0; d < dim(); ++d) {
      double t = a[d] - b[d];
      s += t * t * inv_ls2_[d];
    }
    return s;
  }
  double of_r2(double r2) const {
    double r = std::sqrt(r2);
    return sf2_ * (1.0 + kSqrt5 * r + (5.0 / 3.0) * r2) * std::exp(-kSqrt5 * r);
  }
  // dk / d(r^2) = -(5/6) sf2 (1 + sqrt5 r) exp(-sqrt5 r): finite at r = 0.
  double dk_dr2(double r2) const {
    double r = std::sqrt(r2);
    return -(5.0 / 6.0) * sf2_ * (1.0 + kSqrt5 * r) * std::exp(-kSqrt5 * r);
  }
  double operator()(const double* a, const double* b) const { return of_r2(r2(a, b)); }

  // Ensures: out[d] = dk/d(log l_d) for d < dim(), out[dim()] = dk/d(log sf2).
  void grad_hyper(const double* a, const double* b, double* out) const {
    double s = r2(a, b);
    double g = -2.0 * dk_dr2(s);  // d r^2 / d log l_d = -2 (a_d - b_d)^2 / l_d^2
    for (int d = 0; d < dim(); ++d) {
      double t = a[d] - b[d];
      out[d] = g * t * t * inv_ls2_[d];
    }
    out[dim()] = of_r2(s);
  }

  // Ensures: out[d] = dk(a, b) / da_d.
  void grad_a(const double* a, const double* b, double* out) const {
    double g = 2.0 * dk_dr2(r2(a, b));
    for (int d = 0; d < dim(); ++d) out[d] = g * (a[d] - b[d]) * inv_ls2_[d];
  }

  // Cross-covariance K[i, j] = k(A_i, B_j) for all rows of A and B.
  Eigen::MatrixXd cross(const RowMatrix& A, const RowMatrix& B) const {
    Eigen::MatrixXd K(A.rows(), B.rows());
    for (Eigen::Index i = 0; i < A.rows(); ++i)
      for (Eigen::Index j = 0; j < B.rows(); ++j) K(i, j) = (*this)(A.row(i).data(), B.row(j).data());
    return K;
  }

 private:
  Eigen::VectorXd inv_ls2_;
  double sf2_ = 1.0;
};

}  // namespace kestrel::tuners::gp
