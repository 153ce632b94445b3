// Row-major single-precision GEMM used by every dense op of the CPU backend.
// One entry point so the BLAS behind it (Eigen's own kernels or OpenBLAS) is chosen in one place.
#pragma once

namespace kestrel::trainer::cpu {

// C[m][n] = alpha * op(A) * op(B) + beta * C, all row-major; op(X) = X^T when the flag is set.
// lda/ldb/ldc are the row strides of A, B, C as stored. beta == 0 never reads C (C may be garbage).
// Thread safety: reentrant. Called outside an OpenMP parallel region it uses the backend's threads;
// called inside one it runs on the calling thread only.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);

// Which implementation gemm() was built with ("eigen" or "openblas").
const char* gemm_implementation();

}  // namespace kestrel::trainer::cpu
