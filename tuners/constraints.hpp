// Constraints of a trial as the model-based tuners read them: the kAttrConstraints attr parsed into numbers, and
// the feasibility rule and total violation of Optuna's convention (feasible iff every value <= 0).
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/trial.hpp"

namespace kestrel::tuners {

// The constraint values of `t`, or nullopt when the attr is absent or is not a JSON array (a malformed attr is
// treated as absent rather than failing the ask: the trial still counts as an ordinary one). An element that is
// not a number becomes NaN, which is never feasible.
// Thread safety: pure function.
inline std::optional<std::vector<double>> constraints_of(const search::Trial& t) {
  auto it = t.attrs.find(search::kAttrConstraints);
  if (it == t.attrs.end()) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return std::nullopt;
  std::vector<double> out;
  out.reserve(j.size());
  for (const auto& v : j) out.push_back(v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN());
  return out;
}

// True when every value is <= 0 (NaN is not).
inline bool feasible(const std::vector<double>& c) {
  for (double v : c)
    if (!(v <= 0.0)) return false;
  return true;
}

// Sum of the positive parts (0 for a feasible trial); +inf when a value is NaN, so such trials rank last among
// the infeasible ones.
inline double violation(const std::vector<double>& c) {
  double s = 0.0;
  for (double v : c) {
    if (std::isnan(v)) return std::numeric_limits<double>::infinity();
    if (v > 0.0) s += v;
  }
  return s;
}

}  // namespace kestrel::tuners
