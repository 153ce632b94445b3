// Benchmark objective functions for the tuner comparison (Branin, Hartmann-6, Rosenbrock-5, a mixed space), each
// with its search space and known optimum; mirrored exactly by run_bench.py for the Optuna side.
#pragma once

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "search/space.hpp"

namespace kestrel::bench {

struct BenchFunction {
  std::string name;
  search::SearchSpace space;
  double optimum;  // global minimum value
  std::function<double(const search::Config&)> f;
};

inline double num(const search::Config& c, const std::string& k) { return search::as_double(c.at(k)); }

inline BenchFunction branin() {
  using search::ParamSpec;
  return {"branin",
          search::SearchSpace({ParamSpec::uniform("x1", -5, 10), ParamSpec::uniform("x2", 0, 15)}),
          0.397887357729738,
          [](const search::Config& c) {
            const double pi = 3.14159265358979323846;
            double x1 = num(c, "x1"), x2 = num(c, "x2");
            double b = 5.1 / (4 * pi * pi), cc = 5 / pi, t = 1 / (8 * pi);
            double y = x2 - b * x1 * x1 + cc * x1 - 6;
            return y * y + 10 * (1 - t) * std::cos(x1) + 10;
          }};
}

inline BenchFunction hartmann6() {
  using search::ParamSpec;
  std::vector<ParamSpec> ps;
  for (int i = 0; i < 6; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), 0, 1));
  return {"hartmann6", search::SearchSpace(ps), -3.32236801141551, [](const search::Config& c) {
            static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                           {0.05, 10, 17, 0.1, 8, 14},
                                           {3, 3.5, 1.7, 10, 17, 8},
                                           {17, 8, 0.05, 10, 0.1, 14}};
            static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                           {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                           {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                           {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
            static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
            double s = 0;
            for (int i = 0; i < 4; ++i) {
              double e = 0;
              for (int j = 0; j < 6; ++j) {
                double d = num(c, "x" + std::to_string(j)) - P[i][j];
                e += A[i][j] * d * d;
              }
              s += alpha[i] * std::exp(-e);
            }
            return -s;
          }};
}

inline BenchFunction rosenbrock5() {
  using search::ParamSpec;
  std::vector<ParamSpec> ps;
  for (int i = 0; i < 5; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), -5, 10));
  return {"rosenbrock5", search::SearchSpace(ps), 0.0, [](const search::Config& c) {
            double s = 0;
            for (int i = 0; i < 4; ++i) {
              double a = num(c, "x" + std::to_string(i)), b = num(c, "x" + std::to_string(i + 1));
              s += 100 * (b - a * a) * (b - a * a) + (1 - a) * (1 - a);
            }
            return s;
          }};
}

// Mixed: a log-scale learning rate, an int, a categorical and a plain float; minimum 0 at lr = 10^-2.5, n = 7,
// kind = "b", x = 0.3. The categorical also shifts the best learning rate (an interaction a tuner must find).
inline BenchFunction mixed() {
  using search::ParamSpec;
  using search::Value;
  return {"mixed",
          search::SearchSpace({ParamSpec::uniform("lr", 1e-5, 1.0, true), ParamSpec::integer("n", 1, 32),
                               ParamSpec::categorical("kind", {Value{std::string("a")}, Value{std::string("b")},
                                                                Value{std::string("c")}}),
                               ParamSpec::uniform("x", -2, 2)}),
          0.0,
          [](const search::Config& c) {
            const std::string& k = std::get<std::string>(c.at("kind"));
            double shift = k == "a" ? 1.0 : k == "b" ? 0.0 : -1.0;
            double pen = k == "a" ? 0.3 : k == "b" ? 0.0 : 0.6;
            double l = std::log10(num(c, "lr")) + 2.5 + shift * 0.5 * (k != "b");
            double n = num(c, "n") - 7.0, x = num(c, "x") - 0.3;
            return l * l + 0.02 * n * n + pen + 0.5 * x * x;
          }};
}

inline BenchFunction bench_function(const std::string& name) {
  if (name == "branin") return branin();
  if (name == "hartmann6") return hartmann6();
  if (name == "rosenbrock5") return rosenbrock5();
  if (name == "mixed") return mixed();
  throw std::invalid_argument("unknown function '" + name + "' (branin, hartmann6, rosenbrock5, mixed)");
}

}  // namespace kestrel::bench
