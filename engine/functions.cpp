// The benchmark functions (definitions and optima as in Surjanovic & Bingham's "Virtual Library of Simulation
// Experiments" and BoTorch's test_functions) and FunctionEvaluator's learning-curve loop.
#include "engine/functions.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.hpp"

namespace kestrel::engine {

namespace {

SearchSpace box(const std::vector<std::pair<double, double>>& bounds) {
  std::vector<search::ParamSpec> ps;
  for (size_t i = 0; i < bounds.size(); ++i)
    ps.push_back(search::ParamSpec::uniform("x" + std::to_string(i), bounds[i].first, bounds[i].second));
  return SearchSpace(std::move(ps));
}

double branin(const std::vector<double>& x) {
  constexpr double pi = std::numbers::pi;
  const double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  double u = x[1] - b * x[0] * x[0] + c * x[0] - 6;
  return u * u + 10 * (1 - t) * std::cos(x[0]) + 10;
}

double hartmann6(const std::vector<double>& x) {
  static constexpr double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  static constexpr double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                     {0.05, 10, 17, 0.1, 8, 14},
                                     {3, 3.5, 1.7, 10, 17, 8},
                                     {17, 8, 0.05, 10, 0.1, 14}};
  static constexpr double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                     {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                     {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                     {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    double inner = 0;
    for (int j = 0; j < 6; ++j) inner += A[i][j] * (x[j] - P[i][j]) * (x[j] - P[i][j]);
    sum += alpha[i] * std::exp(-inner);
  }
  return -sum;
}

double rosenbrock(const std::vector<double>& x) {
  double s = 0;
  for (size_t i = 0; i + 1 < x.size(); ++i) {
    double a = x[i + 1] - x[i] * x[i], b = 1 - x[i];
    s += 100 * a * a + b * b;
  }
  return s;
}

}  // namespace

double BenchmarkFunction::evaluate(const Config& c) const {
  std::vector<double> x(dim());
  for (size_t i = 0; i < x.size(); ++i) {
    auto it = c.find(space.params()[i].name);
    if (it == c.end()) throw ConfigError(name + ": configuration has no parameter '" + space.params()[i].name + "'");
    x[i] = search::as_double(it->second);
  }
  return f(x);
}

std::vector<std::string> benchmark_function_names() { return {"branin", "hartmann6", "rosenbrock"}; }

BenchmarkFunction make_benchmark_function(const std::string& name, int dim) {
  BenchmarkFunction b;
  b.name = name;
  if (name == "branin") {
    if (dim != 0 && dim != 2) throw ConfigError("branin is 2-dimensional (asked for " + std::to_string(dim) + ")");
    constexpr double pi = std::numbers::pi;
    b.space = box({{-5, 10}, {0, 15}});
    b.optimum = 0.397887357729738;
    b.minimizers = {{-pi, 12.275}, {pi, 2.275}, {3 * pi, 2.475}};
    b.f = branin;
  } else if (name == "hartmann6") {
    if (dim != 0 && dim != 6) throw ConfigError("hartmann6 is 6-dimensional (asked for " + std::to_string(dim) + ")");
    b.space = box(std::vector<std::pair<double, double>>(6, {0.0, 1.0}));
    b.optimum = -3.322368011415515;
    b.minimizers = {{0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054}};
    b.f = hartmann6;
  } else if (name == "rosenbrock") {
    int d = dim == 0 ? 2 : dim;
    if (d < 2) throw ConfigError("rosenbrock needs dim >= 2 (asked for " + std::to_string(dim) + ")");
    b.space = box(std::vector<std::pair<double, double>>(d, {-5.0, 10.0}));
    b.optimum = 0.0;
    b.minimizers = {std::vector<double>(d, 1.0)};
    b.f = rosenbrock;
  } else {
    throw ConfigError("unknown benchmark function '" + name + "' (known: branin, hartmann6, rosenbrock)");
  }
  return b;
}

void FunctionEvaluator::evaluate(TrialHandle& trial, const EvalContext& ctx) {
  double y = fn_.evaluate(trial.config());
  if (options_.steps <= 0) {
    trial.tell(y);
    return;
  }
  const int n = options_.steps;
  int run = n;
  if (auto b = trial.budget()) run = std::clamp(static_cast<int>(std::lround(*b)), 1, n);
  double value = y;
  for (int s = 0; s < run; ++s) {
    if (ctx.stopping()) {
      trial.tell_failed("stopped: the sweep was interrupted");
      return;
    }
    value = y + options_.curve_scale * (1.0 - static_cast<double>(s + 1) / n);
    if (options_.metric.empty())
      trial.report(s, value);
    else
      trial.report(s, std::map<std::string, double>{{options_.metric, value}});
    if (s + 1 < run && trial.should_prune()) {  // the last step's value is final: never prune a finished trial
      trial.tell_pruned("pruned at step " + std::to_string(s));
      return;
    }
  }
  trial.tell(value);
}

}  // namespace kestrel::engine
