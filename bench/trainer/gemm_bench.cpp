// GEMM throughput on the trainer's shapes, Eigen vs OpenBLAS (cblas_sgemm), single thread and
// 2 threads; best of several repeats (the minimum is the least disturbed by other load).
// Build: see bench/trainer/run.sh. Prints one line per shape.
#include <cblas.h>
#include <omp.h>

#include <Eigen/Core>
#include <chrono>
#include <cstdio>
#include <vector>

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Shape {
  const char* what;
  int m, n, k;
  bool ta, tb;
};

template <typename F>
double best_seconds(F&& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main() {
  const Shape shapes[] = {
      {"mlp fc1 fwd  128x784 * 784x256^T", 128, 256, 784, false, true},
      {"mlp fc1 dW   256x128^T * 128x784", 256, 784, 128, true, false},
      {"cnn fc1 fwd  128x1600 * 1600x128^T", 128, 128, 1600, false, true},
      {"conv2 fwd/sample 64x288 * 288x121", 64, 121, 288, false, false},
      {"conv2 dW/sample 64x121 * 121x288^T", 64, 288, 121, false, true},
      {"conv2 dX/sample 288x64^T * 64x121", 288, 121, 64, true, false},
      {"conv1 fwd/sample 32x9 * 9x676", 32, 676, 9, false, false},
  };
  std::printf("%-40s %8s %10s %10s\n", "shape", "threads", "eigen GF/s", "openblas GF/s");
  for (int threads : {1, 2}) {
    Eigen::setNbThreads(threads);
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
    for (const Shape& s : shapes) {
      RowMat a = RowMat::Random(s.ta ? s.k : s.m, s.ta ? s.m : s.k);
      RowMat b = RowMat::Random(s.tb ? s.n : s.k, s.tb ? s.k : s.n);
      RowMat c(s.m, s.n);
      const int inner = std::max(1, static_cast<int>(2e8 / (2.0 * s.m * s.n * s.k)));
      const double flops = 2.0 * s.m * s.n * s.k * inner;
      const double te = best_seconds([&] {
        for (int i = 0; i < inner; ++i) {
          if (!s.ta && !s.tb) c.noalias() = a * b;
          else if (!s.ta && s.tb) c.noalias() = a * b.transpose();
          else c.noalias() = a.transpose() * b;
        }
      }, 5);
      const double to = best_seconds([&] {
        for (int i = 0; i < inner; ++i)
          cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n,
                      s.k, 1.0f, a.data(), static_cast<int>(a.cols()), b.data(), static_cast<int>(b.cols()), 0.0f,
                      c.data(), s.n);
      }, 5);
      std::printf("%-40s %8d %10.1f %10.1f\n", s.what, threads, flops / te * 1e-9, flops / to * 1e-9);
    }
  }
  return 0;
}
