// Finite-difference gradient checker for trainer models (central differences, double accumulation).
// Shared by the layer and graph tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "trainer/backend.hpp"
#include "trainer/data.hpp"
#include "trainer/model.hpp"

namespace kestrel::trainer::testing {

// The scalar the checker differentiates: L = sum_i out[i] * r[i] with fixed random weights r, so
// every output element contributes with a different weight. dL/dout = r is what backward gets.
struct GradCheckOptions {
  int batch = 3;
  bool train = true;
  double step = 1e-2;      // central-difference step h
  double abs_tol = 5e-4;   // |analytic - numeric| <= abs_tol + rel_tol * |numeric|
  double rel_tol = 2e-3;
  int max_checks_per_tensor = 48;  // elements checked per tensor (evenly spaced)
  uint64_t seed = 7;
  // Inputs are drawn from U(-1, 1) unless `input` is given.
  std::vector<float> input;
};

struct GradCheckResult {
  int checked = 0;
  int failed = 0;
  double worst = 0.0;  // largest |analytic - numeric| / (abs_tol + rel_tol * |numeric|)
  std::string first_failure;
};

inline double weighted_sum(Model& m, const std::vector<float>& x, const std::vector<float>& r, int n,
                           bool train, uint64_t counter) {
  m.set_dropout_counter(counter);
  const float* out = m.forward(x.data(), n, train);
  std::vector<float> host(r.size());
  m.backend().download(host.data(), out, host.size());
  double s = 0.0;
  for (size_t i = 0; i < r.size(); ++i) s += static_cast<double>(host[i]) * r[i];
  return s;
}

// Checks d L / d parameter for every trainable parameter and d L / d input, on the CPU backend.
inline GradCheckResult check_gradients(const Graph& g, const GradCheckOptions& opt,
                                       const std::function<void(Model&)>& prepare = {}) {
  auto backend = make_cpu_backend(2);
  Model m(g, *backend, opt.seed);
  if (prepare) prepare(m);
  const int n = opt.batch;
  SplitMix64 rng(opt.seed * 31 + 1);
  std::vector<float> x = opt.input;
  if (x.empty()) {
    x.resize(static_cast<size_t>(n) * g.input_shape().size());
    for (auto& v : x) v = static_cast<float>(2.0 * rng.uniform() - 1.0);
  }
  std::vector<float> r(static_cast<size_t>(n) * g.output_shape().size());
  for (auto& v : r) v = static_cast<float>(2.0 * rng.uniform() - 1.0);
  const uint64_t counter = 5;

  m.plan(n);
  weighted_sum(m, x, r, n, opt.train, counter);
  m.backward(r.data(), true);
  // Snapshot analytic gradients before the probes overwrite activations.
  std::vector<std::vector<float>> grads;
  for (size_t i = 0; i < m.params().size(); ++i) {
    std::vector<float> gv(m.params()[i].size);
    m.backend().download(gv.data(), m.grad_data(i), gv.size());
    grads.push_back(gv);
  }
  std::vector<float> gin(x.size());
  m.backend().download(gin.data(), m.input_grad(), gin.size());
  // Running statistics move with every training forward; restore them so each probe sees the same.
  auto state = m.state_dict();

  GradCheckResult res;
  auto compare = [&](const std::string& what, double analytic, double numeric) {
    const double tol = opt.abs_tol + opt.rel_tol * std::fabs(numeric);
    const double ratio = std::fabs(analytic - numeric) / tol;
    res.worst = std::max(res.worst, ratio);
    ++res.checked;
    if (ratio > 1.0) {
      if (res.failed == 0)
        res.first_failure = what + ": analytic " + std::to_string(analytic) + " numeric " + std::to_string(numeric);
      ++res.failed;
    }
  };
  auto probe = [&](float* value, auto restore) {
    const float orig = *value;
    *value = static_cast<float>(orig + opt.step);
    restore();
    const double up = weighted_sum(m, x, r, n, opt.train, counter);
    *value = static_cast<float>(orig - opt.step);
    restore();
    const double down = weighted_sum(m, x, r, n, opt.train, counter);
    *value = orig;
    // The step actually applied in float, not the nominal one.
    const double h2 = static_cast<double>(static_cast<float>(orig + opt.step)) -
                      static_cast<double>(static_cast<float>(orig - opt.step));
    return (up - down) / h2;
  };
  auto reset_buffers = [&] {
    for (const auto& b : m.buffers()) m.set_tensor(b.name, state[b.name]);
  };
  for (size_t i = 0; i < m.params().size(); ++i) {
    if (m.frozen(i)) continue;
    const int64_t size = m.params()[i].size;
    const int64_t stride = std::max<int64_t>(1, size / opt.max_checks_per_tensor);
    for (int64_t j = 0; j < size; j += stride) {
      float* p = m.param_data(i) + j;  // CPU backend: parameters are host memory
      const double numeric = probe(p, reset_buffers);
      compare(m.params()[i].name + "[" + std::to_string(j) + "]", grads[i][j], numeric);
    }
  }
  const int64_t stride = std::max<int64_t>(1, static_cast<int64_t>(x.size()) / opt.max_checks_per_tensor);
  for (size_t j = 0; j < x.size(); j += stride) {
    const double numeric = probe(&x[j], reset_buffers);
    compare("input[" + std::to_string(j) + "]", gin[j], numeric);
  }
  return res;
}

}  // namespace kestrel::trainer::testing
