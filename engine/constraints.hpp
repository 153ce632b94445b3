// Constraints of a sweep (`constraints:` in the sweep file): "metric >= bound" / "metric <= bound" conditions on a
// trial's final metrics, evaluated when it completes and stored as search::kAttrConstraints (Optuna's convention).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/trial.hpp"

namespace kestrel::engine {

// Trial attribute holding every final metric an evaluator measured, as a JSON object {name: number}. The trainer
// evaluator writes it (objectives or not), so a constraint or a warm start can read metrics that are not objectives.
inline constexpr const char* kAttrMetrics = "metrics";

// What this represents: one condition `metric op bound` with op ">=" or "<=". Strict comparisons are refused: the
// stored number (the violation) is feasible at <= 0, which cannot tell "x > b" from "x >= b".
struct Constraint {
  enum class Op { AtLeast, AtMost };  // ">=", "<="
  std::string metric;
  Op op = Op::AtLeast;
  double bound = 0.0;

  // The violation: bound - x for ">=", x - bound for "<="; <= 0 means satisfied (0 on the bound itself).
  double violation(double x) const { return op == Op::AtLeast ? bound - x : x - bound; }
  std::string text() const;  // "robust_accuracy@0.1 >= 0.5"
};

// Parses "metric >= bound" or "metric <= bound" (spaces optional; the metric may hold '@', '.', '_', '-').
// Throws ConfigError saying what is wrong (unknown operator, missing bound, strict comparison).
Constraint parse_constraint(const std::string& text);
// Parses {metric: NAME, op: ">=" | "<=", bound: NUMBER} (or the string form). Throws ConfigError.
Constraint constraint_from_json(const nlohmann::json& j);
nlohmann::json constraints_to_json(const std::vector<Constraint>& cs);  // the string forms, in order

// The final value of `metric` for a trial: the objective of that name, else the kAttrMetrics attr, else the last
// intermediate report of that metric (a command evaluator's extra metric lines). nullopt when none has it.
std::optional<double> trial_metric(const search::Trial& t, const std::vector<search::Objective>& objectives,
                                   const std::string& metric);

// Violations of every constraint for a trial, in order. Throws EvalError naming the first metric the trial does not
// have (a constraint on a metric the evaluator never reports is a sweep error, not an infeasible trial).
std::vector<double> evaluate_constraints(const search::Trial& t, const std::vector<search::Objective>& objectives,
                                         const std::vector<Constraint>& constraints);

// The stored violations of a trial (kAttrConstraints); nullopt when the attr is absent or malformed.
std::optional<std::vector<double>> stored_violations(const search::Trial& t);

// Feasible: no constraints were recorded, or every recorded violation is <= 0.
bool is_feasible(const search::Trial& t);

// A prior copied from another study (search::kAttrWarmStart): not a result of this study. Budgets (n_trials,
// target) and `best` leave such trials out; tuners see them as observations.
bool is_warm_start(const search::Trial& t);

}  // namespace kestrel::engine
