// Built-in benchmark functions with known optima (Branin, Hartmann-6, Rosenbrock-N) and FunctionEvaluator, which
// evaluates them as trials, optionally reporting a learning curve step by step so that pruning can be exercised.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/evaluator.hpp"

namespace kestrel::engine {

// What this represents: a test function to minimize over a box. Parameters are floats named x0, x1, ...
// Immutable; safe to share between threads.
struct BenchmarkFunction {
  std::string name;
  SearchSpace space;
  double optimum = 0.0;                        // the global minimum value
  std::vector<std::vector<double>> minimizers;  // every known global minimizer (at least one)
  std::function<double(const std::vector<double>&)> f;

  size_t dim() const { return space.size(); }
  double operator()(const std::vector<double>& x) const { return f(x); }
  // Reads x0..x{d-1} from a configuration (ConfigError when one is missing).
  double evaluate(const Config& c) const;
};

// "branin" (2-d), "hartmann6" (6-d), "rosenbrock" (`dim` >= 2, default 2). Throws ConfigError for an unknown name
// or dimension, naming the valid ones.
BenchmarkFunction make_benchmark_function(const std::string& name, int dim = 0);
std::vector<std::string> benchmark_function_names();

struct FunctionEvaluatorOptions {
  // 0: tell f(x) at once. N > 0: report a learning curve at steps 0..N-1 first, asking should_prune() after each:
  // value(s) = f(x) + curve_scale * (1 - (s + 1) / N), which ends at f(x) and ranks trials by f(x) at every step.
  // A trial with a budget (multi-fidelity tuners) runs min(budget, N) steps and its final value is the curve's
  // value at its last step.
  int steps = 0;
  double curve_scale = 1.0;
  std::string metric;  // reported metric name; empty = the study's first objective
};

// What this represents: the evaluator for a BenchmarkFunction (single objective, minimize). Pruned trials are told
// PRUNED with the step. Thread safety: evaluate() may run concurrently.
class FunctionEvaluator : public Evaluator {
 public:
  explicit FunctionEvaluator(BenchmarkFunction fn, FunctionEvaluatorOptions options = {})
      : fn_(std::move(fn)), options_(std::move(options)) {}
  void evaluate(TrialHandle& trial, const EvalContext& ctx) override;
  std::string name() const override { return "function:" + fn_.name; }
  const BenchmarkFunction& function() const { return fn_; }

 private:
  BenchmarkFunction fn_;
  FunctionEvaluatorOptions options_;
};

}  // namespace kestrel::engine
