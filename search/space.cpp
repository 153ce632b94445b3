// SearchSpace validation, the unit-cube encoding and sampling.
// Discrete parameters (int, stepped float, categorical) map to equal-width cells of [0,1] so that uniform
// sampling of the cube is uniform over their values; log parameters are uniform in log space.
#include "search/space.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "common/error.hpp"

namespace kestrel::search {
namespace {

[[noreturn]] void bad(const std::string& name, const std::string& why) {
  throw ConfigError("parameter '" + name + "': " + why);
}

std::string num(double x) { return to_string(Value{x}); }

// Number of grid points of a stepped float or an int; 0 when continuous.
int64_t grid_size(const ParamSpec& p) {
  if (p.kind == ParamKind::Int) {
    int64_t step = p.step ? static_cast<int64_t>(*p.step) : 1;
    return (static_cast<int64_t>(p.high) - static_cast<int64_t>(p.low)) / step + 1;
  }
  if (p.kind == ParamKind::Float && p.step) return static_cast<int64_t>(std::llround((p.high - p.low) / *p.step)) + 1;
  return 0;
}

double clamp01(double u) {
  if (!(u >= 0.0)) return 0.0;  // also maps NaN to 0
  return u > 1.0 ? 1.0 : u;
}

int64_t cell(double u, int64_t k) { return std::min<int64_t>(k - 1, static_cast<int64_t>(std::floor(clamp01(u) * k))); }

}  // namespace

int64_t ParamSpec::cardinality() const {
  switch (kind) {
    case ParamKind::Float: return step ? grid_size(*this) : 0;
    case ParamKind::Int: return log ? static_cast<int64_t>(high - low) + 1 : grid_size(*this);
    case ParamKind::Categorical: return static_cast<int64_t>(choices.size());
    case ParamKind::Fixed: return 1;
  }
  return 0;
}

ParamSpec ParamSpec::uniform(std::string name, double low, double high, bool log) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Float;
  p.low = low;
  p.high = high;
  p.log = log;
  return p;
}

ParamSpec ParamSpec::integer(std::string name, int64_t low, int64_t high, bool log, int64_t step) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Int;
  p.low = static_cast<double>(low);
  p.high = static_cast<double>(high);
  p.log = log;
  if (step != 1) p.step = static_cast<double>(step);
  return p;
}

ParamSpec ParamSpec::categorical(std::string name, std::vector<Value> choices) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Categorical;
  p.choices = std::move(choices);
  return p;
}

ParamSpec ParamSpec::constant(std::string name, Value v) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::Fixed;
  p.fixed = std::move(v);
  return p;
}

SearchSpace::SearchSpace(std::vector<ParamSpec> params) {
  std::set<std::string> names;
  for (const auto& p : params) {
    if (p.name.empty()) throw ConfigError("a parameter has an empty name");
    if (!names.insert(p.name).second) bad(p.name, "defined twice");
    switch (p.kind) {
      case ParamKind::Float:
      case ParamKind::Int: {
        if (!std::isfinite(p.low) || !std::isfinite(p.high)) bad(p.name, "bounds must be finite numbers");
        if (!(p.low < p.high))
          bad(p.name, "low (" + num(p.low) + ") must be smaller than high (" + num(p.high) + ")");
        if (p.log && p.low <= 0) bad(p.name, "a log scale needs low > 0 (got " + num(p.low) + ")");
        if (p.kind == ParamKind::Int && (p.low != std::floor(p.low) || p.high != std::floor(p.high)))
          bad(p.name, "int bounds must be whole numbers");
        if (p.step) {
          double s = *p.step;
          if (!(s > 0)) bad(p.name, "step must be > 0 (got " + num(s) + ")");
          if (p.log) bad(p.name, "step cannot be combined with a log scale");
          if (p.kind == ParamKind::Int && s != std::floor(s)) bad(p.name, "an int step must be a whole number");
          double k = (p.high - p.low) / s;
          if (std::fabs(k - std::round(k)) > 1e-9 * std::max(1.0, std::fabs(k)))
            bad(p.name, "step " + num(s) + " does not divide the range [" + num(p.low) + ", " + num(p.high) + "]");
        }
        break;
      }
      case ParamKind::Categorical: {
        if (p.choices.empty()) bad(p.name, "a categorical parameter needs at least one choice");
        for (size_t i = 0; i < p.choices.size(); ++i)
          for (size_t j = i + 1; j < p.choices.size(); ++j)
            if (values_equal(p.choices[i], p.choices[j]))
              bad(p.name, "choice '" + to_string(p.choices[i]) + "' appears twice");
        break;
      }
      case ParamKind::Fixed: break;
    }
  }
  // Order so that every parent precedes its children; a cycle or unknown parent is an error.
  std::vector<ParamSpec> ordered;
  std::set<std::string> placed;
  std::vector<bool> done(params.size(), false);
  for (const auto& p : params)
    if (p.condition) {
      if (!names.count(p.condition->parent))
        bad(p.name, "condition refers to unknown parameter '" + p.condition->parent + "'");
      if (p.condition->parent == p.name) bad(p.name, "condition refers to itself");
      if (p.condition->values.empty()) bad(p.name, "condition lists no values of '" + p.condition->parent + "'");
    }
  while (ordered.size() < params.size()) {
    bool progress = false;
    for (size_t i = 0; i < params.size(); ++i) {
      if (done[i]) continue;
      const auto& p = params[i];
      if (!p.condition || placed.count(p.condition->parent)) {
        ordered.push_back(p);
        placed.insert(p.name);
        done[i] = true;
        progress = true;
      }
    }
    if (!progress) {
      for (size_t i = 0; i < params.size(); ++i)
        if (!done[i]) bad(params[i].name, "conditions form a cycle");
    }
  }
  params_ = std::move(ordered);
  // Condition values must be values the parent can take.
  for (const auto& p : params_) {
    if (!p.condition) continue;
    const auto& parent = at(p.condition->parent);
    for (const auto& v : p.condition->values) {
      bool ok = true;
      if (parent.kind == ParamKind::Categorical)
        ok = std::any_of(parent.choices.begin(), parent.choices.end(),
                         [&](const Value& c) { return values_equal(c, v); });
      else if (parent.kind == ParamKind::Fixed)
        ok = values_equal(parent.fixed, v);
      else
        ok = !std::holds_alternative<std::string>(v) && as_double(v) >= parent.low && as_double(v) <= parent.high;
      if (!ok)
        bad(p.name, "condition value '" + to_string(v) + "' is not a value parameter '" + parent.name + "' can take");
    }
  }
}

const ParamSpec& SearchSpace::at(const std::string& name) const {
  auto i = index_of(name);
  if (!i) throw ConfigError("unknown parameter '" + name + "'");
  return params_[*i];
}

std::optional<size_t> SearchSpace::index_of(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return i;
  return std::nullopt;
}

int64_t SearchSpace::cardinality() const {
  int64_t total = 1;
  for (const auto& p : params_) {
    int64_t k = p.cardinality();
    if (k == 0) return 0;
    if (total > std::numeric_limits<int64_t>::max() / k) return std::numeric_limits<int64_t>::max();
    total *= k;
  }
  return total;
}

bool SearchSpace::is_active(const ParamSpec& p, const Config& partial) const {
  if (!p.condition) return true;
  auto it = partial.find(p.condition->parent);
  if (it == partial.end()) return false;
  for (const auto& v : p.condition->values)
    if (values_equal(v, it->second)) return true;
  return false;
}

double SearchSpace::encode_one(size_t i, const Value& v) const {
  const auto& p = params_[i];
  switch (p.kind) {
    case ParamKind::Fixed: return 0.5;
    case ParamKind::Categorical: {
      for (size_t k = 0; k < p.choices.size(); ++k)
        if (values_equal(p.choices[k], v)) return (static_cast<double>(k) + 0.5) / p.choices.size();
      bad(p.name, "value '" + to_string(v) + "' is not one of the choices");
    }
    case ParamKind::Float:
    case ParamKind::Int: {
      double x = as_double(v);
      if (p.log) {
        double lo = p.kind == ParamKind::Int ? p.low - 0.5 : p.low;
        double hi = p.kind == ParamKind::Int ? p.high + 0.5 : p.high;
        return clamp01((std::log(x) - std::log(lo)) / (std::log(hi) - std::log(lo)));
      }
      int64_t k = grid_size(p);
      if (k > 0) {
        double s = p.step ? *p.step : 1.0;
        double idx = std::round((x - p.low) / s);
        return clamp01((idx + 0.5) / static_cast<double>(k));
      }
      return clamp01((x - p.low) / (p.high - p.low));
    }
  }
  return 0.5;
}

Value SearchSpace::decode_one(size_t i, double u) const {
  const auto& p = params_[i];
  u = clamp01(u);
  switch (p.kind) {
    case ParamKind::Fixed: return p.fixed;
    case ParamKind::Categorical: return p.choices[cell(u, static_cast<int64_t>(p.choices.size()))];
    case ParamKind::Float:
    case ParamKind::Int: {
      if (p.log) {
        double lo = p.kind == ParamKind::Int ? p.low - 0.5 : p.low;
        double hi = p.kind == ParamKind::Int ? p.high + 0.5 : p.high;
        double x = std::exp(std::log(lo) + u * (std::log(hi) - std::log(lo)));
        if (p.kind == ParamKind::Int)
          return static_cast<int64_t>(std::clamp(std::round(x), p.low, p.high));
        return std::clamp(x, p.low, p.high);
      }
      int64_t k = grid_size(p);
      if (k > 0) {
        double s = p.step ? *p.step : 1.0;
        double x = p.low + static_cast<double>(cell(u, k)) * s;
        if (p.kind == ParamKind::Int) return static_cast<int64_t>(std::llround(x));
        return std::min(x, p.high);
      }
      return std::clamp(p.low + u * (p.high - p.low), p.low, p.high);
    }
  }
  return p.fixed;
}

std::vector<double> SearchSpace::encode(const Config& c) const {
  std::vector<double> u(params_.size(), 0.5);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = c.find(params_[i].name);
    if (it != c.end()) u[i] = encode_one(i, it->second);
  }
  return u;
}

Config SearchSpace::decode(const std::vector<double>& u) const {
  if (u.size() != params_.size())
    throw ConfigError("encoded point has " + std::to_string(u.size()) + " coordinates, the space has " +
                      std::to_string(params_.size()));
  Config c;
  for (size_t i = 0; i < params_.size(); ++i)
    if (is_active(params_[i], c)) c[params_[i].name] = decode_one(i, u[i]);
  return c;
}

void SearchSpace::check(const Config& c) const {
  for (const auto& [name, v] : c)
    if (!index_of(name)) throw ConfigError("unknown parameter '" + name + "'");
  Config seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    auto it = c.find(p.name);
    bool active = is_active(p, seen);
    if (!active) {
      if (it != c.end()) bad(p.name, "is set but inactive (its condition on '" + p.condition->parent + "' is false)");
      continue;
    }
    if (it == c.end()) bad(p.name, "is missing");
    const Value& v = it->second;
    switch (p.kind) {
      case ParamKind::Fixed:
        if (!values_equal(v, p.fixed)) bad(p.name, "is fixed to '" + to_string(p.fixed) + "'");
        break;
      case ParamKind::Categorical: encode_one(i, v); break;
      case ParamKind::Float:
      case ParamKind::Int: {
        if (std::holds_alternative<std::string>(v)) bad(p.name, "needs a number, got '" + to_string(v) + "'");
        double x = as_double(v);
        if (!(x >= p.low && x <= p.high))
          bad(p.name, "value " + num(x) + " is outside [" + num(p.low) + ", " + num(p.high) + "]");
        if (p.kind == ParamKind::Int && x != std::floor(x)) bad(p.name, "needs a whole number, got " + num(x));
        break;
      }
    }
    seen[p.name] = v;
  }
}

Config SearchSpace::sample(std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::vector<double> u(params_.size());
  for (auto& x : u) x = U(rng);
  return decode(u);
}

std::string SearchSpace::key(const Config& c) const {
  std::string k;
  for (const auto& [name, v] : c) {
    k += name;
    k += '=';
    k += to_string(v);
    k += ';';
  }
  return k;
}

}  // namespace kestrel::search
