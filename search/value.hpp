// Value: one parameter value (float, int, bool or string), with JSON conversion and printing.
// Config: one assignment of values to the active parameters of a search space (ordered by name).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

namespace kestrel::search {

using Value = std::variant<double, int64_t, bool, std::string>;
using Config = std::map<std::string, Value>;

// Numeric view of a value (bool -> 0/1); throws ConfigError for strings.
double as_double(const Value& v);
// Text as a user would write it ("0.001", "32", "true", "adam"); doubles round-trip exactly.
std::string to_string(const Value& v);
bool values_equal(const Value& a, const Value& b);

nlohmann::json to_json(const Value& v);
Value value_from_json(const nlohmann::json& j);
nlohmann::json config_to_json(const Config& c);
Config config_from_json(const nlohmann::json& j);

}  // namespace kestrel::search
