// SearchSpace: parameter kinds (float, int, categorical, fixed; linear or log; step; conditional), validation,
// and the unit-cube encoding tuners work in.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "search/value.hpp"

namespace kestrel::search {

enum class ParamKind { Float, Int, Categorical, Fixed };

// Active only when `parent` takes one of `values`.
struct Condition {
  std::string parent;
  std::vector<Value> values;
};

// One parameter. For Float/Int: low <= x <= high, optionally log-scaled and on a step grid
// (Int step defaults to 1). For Categorical: `choices` (non-empty, unique). For Fixed: `fixed`.
struct ParamSpec {
  std::string name;
  ParamKind kind = ParamKind::Float;
  double low = 0.0;
  double high = 1.0;
  bool log = false;
  std::optional<double> step;
  std::vector<Value> choices;
  Value fixed;
  std::optional<Condition> condition;

  // Number of distinct values, or 0 when infinite (continuous float).
  int64_t cardinality() const;

  static ParamSpec uniform(std::string name, double low, double high, bool log = false);
  static ParamSpec integer(std::string name, int64_t low, int64_t high, bool log = false, int64_t step = 1);
  static ParamSpec categorical(std::string name, std::vector<Value> choices);
  static ParamSpec constant(std::string name, Value v);
};

// What this represents: an ordered list of parameters (order = encoding order), validated on construction.
// Thread safety: immutable after construction; all const methods may be called concurrently.
class SearchSpace {
 public:
  SearchSpace() = default;
  // Throws ConfigError naming the parameter when a spec is impossible (low >= high, log with low <= 0, step that
  // does not divide the range, empty or duplicate categories, unknown or cyclic condition parents, duplicate names).
  explicit SearchSpace(std::vector<ParamSpec> params);

  const std::vector<ParamSpec>& params() const { return params_; }
  size_t size() const { return params_.size(); }
  const ParamSpec& at(const std::string& name) const;
  std::optional<size_t> index_of(const std::string& name) const;

  // Product of cardinalities over all parameters (ignoring conditions; an upper bound), or 0 when infinite.
  // Saturates at INT64_MAX.
  int64_t cardinality() const;
  bool is_finite() const { return cardinality() > 0; }

  // Whether `p` is active given the values of the parameters before it (parents precede children in params()).
  bool is_active(const ParamSpec& p, const Config& partial) const;

  // Encoding: one coordinate in [0,1] per parameter (in params() order). Float/Int map through their (log) scale;
  // categorical index i of k maps to (i + 0.5) / k; fixed maps to 0.5. decode() snaps to the step grid / category
  // and drops inactive parameters; it clamps coordinates outside [0,1].
  std::vector<double> encode(const Config& c) const;  // inactive parameters encode as 0.5
  Config decode(const std::vector<double>& u) const;
  // Decode a single coordinate for parameter i.
  Value decode_one(size_t i, double u) const;
  double encode_one(size_t i, const Value& v) const;

  // Checks a user-given configuration: every active parameter present and in range, no unknown names.
  // Throws ConfigError with the reason.
  void check(const Config& c) const;
  // A uniformly random configuration (log parameters uniform in log space).
  Config sample(std::mt19937_64& rng) const;

  // Canonical key for deduplication of configurations.
  std::string key(const Config& c) const;

 private:
  std::vector<ParamSpec> params_;
};

}  // namespace kestrel::search
