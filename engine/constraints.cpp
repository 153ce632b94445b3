// Constraints of a sweep: parsing "metric >= bound", finding a trial's final metric, and the violations stored with
// the trial. Feasibility is read back from the stored attr only, so `kestrel best` needs no sweep file.
#include "engine/constraints.hpp"

#include <cmath>
#include <regex>
#include <sstream>

#include "common/error.hpp"

namespace kestrel::engine {

std::string Constraint::text() const {
  std::ostringstream os;
  os.precision(17);
  os << metric << (op == Op::AtLeast ? " >= " : " <= ") << bound;
  return os.str();
}

Constraint parse_constraint(const std::string& text) {
  static const std::regex kForm(R"(\s*([A-Za-z_][A-Za-z0-9_.@\-]*)\s*(>=|<=|=>|=<|>|<|==|=)\s*(\S+)\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, kForm))
    throw ConfigError("constraint '" + text + "': expected 'METRIC >= BOUND' or 'METRIC <= BOUND'");
  std::string op = m[2].str();
  if (op == ">" || op == "<")
    throw ConfigError("constraint '" + text + "': strict '" + op + "' cannot be stored as a violation <= 0; use '" +
                      op + "='");
  if (op == "=" || op == "==" || op == "=>" || op == "=<")
    throw ConfigError("constraint '" + text + "': unknown operator '" + op + "' (use >= or <=)");
  Constraint c;
  c.metric = m[1].str();
  c.op = op == ">=" ? Constraint::Op::AtLeast : Constraint::Op::AtMost;
  const std::string b = m[3].str();
  size_t used = 0;
  try {
    c.bound = std::stod(b, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != b.size() || !std::isfinite(c.bound))
    throw ConfigError("constraint '" + text + "': the bound '" + b + "' is not a finite number");
  return c;
}

Constraint constraint_from_json(const nlohmann::json& j) {
  if (j.is_string()) return parse_constraint(j.get<std::string>());
  if (!j.is_object() || !j.contains("metric") || !j.contains("op") || !j.contains("bound"))
    throw ConfigError("constraint: expected \"METRIC >= BOUND\" or {metric, op, bound}, got " + j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "metric" && it.key() != "op" && it.key() != "bound")
      throw ConfigError("constraint: unknown key '" + it.key() + "' (expected metric, op, bound)");
  if (!j["metric"].is_string() || !j["op"].is_string() || !j["bound"].is_number())
    throw ConfigError("constraint: metric and op must be text and bound a number, got " + j.dump());
  std::ostringstream os;
  os.precision(17);
  os << j["metric"].get<std::string>() << " " << j["op"].get<std::string>() << " " << j["bound"].get<double>();
  return parse_constraint(os.str());
}

nlohmann::json constraints_to_json(const std::vector<Constraint>& cs) {
  auto a = nlohmann::json::array();
  for (const auto& c : cs) a.push_back(c.text());
  return a;
}

std::optional<double> trial_metric(const search::Trial& t, const std::vector<search::Objective>& objectives,
                                   const std::string& metric) {
  for (size_t i = 0; i < objectives.size() && i < t.values.size(); ++i)
    if (objectives[i].name == metric) return t.values[i];
  if (auto it = t.attrs.find(kAttrMetrics); it != t.attrs.end()) {
    auto j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_object() && j.contains(metric) && j[metric].is_number()) return j[metric].get<double>();
  }
  return t.last_report(metric);
}

std::vector<double> evaluate_constraints(const search::Trial& t, const std::vector<search::Objective>& objectives,
                                         const std::vector<Constraint>& constraints) {
  std::vector<double> out;
  out.reserve(constraints.size());
  for (const auto& c : constraints) {
    auto x = trial_metric(t, objectives, c.metric);
    if (!x)
      throw EvalError("constraint '" + c.text() + "': the trial has no metric '" + c.metric +
                      "' (not an objective, not among the evaluator's final metrics, never reported)");
    if (!std::isfinite(*x))
      throw EvalError("constraint '" + c.text() + "': metric '" + c.metric + "' is not finite");
    out.push_back(c.violation(*x));
  }
  return out;
}

std::optional<std::vector<double>> stored_violations(const search::Trial& t) {
  auto it = t.attrs.find(search::kAttrConstraints);
  if (it == t.attrs.end()) return std::nullopt;
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  if (!j.is_array()) return std::nullopt;
  std::vector<double> v;
  for (const auto& e : j) {
    if (!e.is_number()) return std::nullopt;
    v.push_back(e.get<double>());
  }
  return v;
}

bool is_feasible(const search::Trial& t) {
  auto it = t.attrs.find(search::kAttrConstraints);
  if (it == t.attrs.end()) return true;
  auto v = stored_violations(t);
  if (!v) return false;  // a malformed record cannot prove feasibility
  for (double x : *v)
    if (!(x <= 0.0)) return false;
  return true;
}

bool is_warm_start(const search::Trial& t) { return t.attrs.count(search::kAttrWarmStart) > 0; }

}  // namespace kestrel::engine
