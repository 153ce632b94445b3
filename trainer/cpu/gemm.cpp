// Row-major SGEMM on Eigen's product kernels, or on OpenBLAS when built with KESTREL_TRAINER_OPENBLAS.
// Eigen is the default: bench/trainer/gemm_bench measures both on the trainer's shapes (bench/RESULTS.md).
#include "trainer/cpu/gemm.hpp"

#include <Eigen/Core>

#ifdef KESTREL_TRAINER_OPENBLAS
#include <cblas.h>
#endif

namespace kestrel::trainer::cpu {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;
using MMap = Eigen::Map<RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename A, typename B>
void product(MMap& c, const A& a, const B& b, float alpha, float beta) {
  if (beta == 0.0f) {
    if (alpha == 1.0f) c.noalias() = a * b;
    else c.noalias() = alpha * a * b;
  } else {
    if (beta != 1.0f) c *= beta;
    if (alpha == 1.0f) c.noalias() += a * b;
    else c.noalias() += alpha * a * b;
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
#ifdef KESTREL_TRAINER_OPENBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  MMap cm(c, m, n, Eigen::OuterStride<>(ldc));
  // Stored shapes: A is m x k (or k x m when transposed), B is k x n (or n x k).
  CMap am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
  CMap bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) product(cm, am, bm, alpha, beta);
  else if (!trans_a && trans_b) product(cm, am, bm.transpose(), alpha, beta);
  else if (trans_a && !trans_b) product(cm, am.transpose(), bm, alpha, beta);
  else product(cm, am.transpose(), bm.transpose(), alpha, beta);
#endif
}

const char* gemm_implementation() {
#ifdef KESTREL_TRAINER_OPENBLAS
  return "openblas";
#else
  return "eigen";
#endif
}

}  // namespace kestrel::trainer::cpu
