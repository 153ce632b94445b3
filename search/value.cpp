// Value and Config helpers: numeric views, printing that round-trips, JSON conversion.
// Doubles print with 17 significant digits only when needed so that "0.001" stays "0.001".
#include "search/value.hpp"

#include <charconv>
#include <cmath>

#include "common/error.hpp"

namespace kestrel::search {

double as_double(const Value& v) {
  if (auto d = std::get_if<double>(&v)) return *d;
  if (auto i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  throw ConfigError("value '" + std::get<std::string>(v) + "' is not numeric");
}

std::string to_string(const Value& v) {
  if (auto d = std::get_if<double>(&v)) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);  // shortest round-trip form
    return std::string(buf, r.ptr);
  }
  if (auto i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return std::get<std::string>(v);
}

bool values_equal(const Value& a, const Value& b) {
  if (a.index() == b.index()) return a == b;
  // 3 and 3.0 are the same number for conditions and categories given in YAML.
  bool an = !std::holds_alternative<std::string>(a), bn = !std::holds_alternative<std::string>(b);
  if (an && bn && !std::holds_alternative<bool>(a) && !std::holds_alternative<bool>(b))
    return as_double(a) == as_double(b);
  return false;
}

nlohmann::json to_json(const Value& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

Value value_from_json(const nlohmann::json& j) {
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  throw ConfigError("unsupported JSON value for a parameter: " + j.dump());
}

nlohmann::json config_to_json(const Config& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : c) j[k] = to_json(v);
  return j;
}

Config config_from_json(const nlohmann::json& j) {
  Config c;
  for (auto it = j.begin(); it != j.end(); ++it) c[it.key()] = value_from_json(it.value());
  return c;
}

}  // namespace kestrel::search
