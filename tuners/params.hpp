// ParamReader: reads a tuner's or pruner's options from the sweep file's JSON object into a params struct,
// refusing unknown keys and wrong types with a ConfigError that lists the valid keys.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kestrel::tuners {

// What this represents: one pass over a params object. Call get() once per known key (the struct field keeps its
// default when the key is absent), then finish(), which throws for any key nobody asked for.
// Thread safety: none needed (a local helper).
class ParamReader {
 public:
  // `owner` names the algorithm in messages ("tuner 'tpe'"). `params` may be null (= no options) or an object.
  ParamReader(std::string owner, const nlohmann::json& params);

  void get(const std::string& key, bool& out);
  void get(const std::string& key, int64_t& out);
  void get(const std::string& key, double& out);
  void get(const std::string& key, std::string& out);
  void get(const std::string& key, std::optional<double>& out);
  void get(const std::string& key, std::vector<double>& out);

  // Throws ConfigError naming the unknown keys and listing the valid ones.
  void finish() const;

  // Shorthand for the common range checks; throw ConfigError naming the key.
  void require(bool ok, const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json* find(const std::string& key);
  [[noreturn]] void type_error(const std::string& key, const std::string& want) const;

  std::string owner_;
  const nlohmann::json& params_;
  std::vector<std::string> known_;
};

}  // namespace kestrel::tuners
