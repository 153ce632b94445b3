// ParamReader: strict parsing of algorithm options (unknown keys and wrong types are ConfigErrors).
// Integers given as whole floats (YAML "10.0") are accepted; fractions where an integer is needed are not.
#include "tuners/params.hpp"

#include <cmath>

#include "common/error.hpp"

namespace kestrel::tuners {

ParamReader::ParamReader(std::string owner, const nlohmann::json& params) : owner_(std::move(owner)), params_(params) {
  if (!params_.is_null() && !params_.is_object())
    throw ConfigError(owner_ + ": options must be a mapping of key: value, got " + params_.dump());
}

const nlohmann::json* ParamReader::find(const std::string& key) {
  known_.push_back(key);
  if (!params_.is_object()) return nullptr;
  auto it = params_.find(key);
  if (it == params_.end() || it->is_null()) return nullptr;
  return &*it;
}

void ParamReader::type_error(const std::string& key, const std::string& want) const {
  throw ConfigError(owner_ + ": option '" + key + "' must be " + want + ", got " + params_.at(key).dump());
}

void ParamReader::get(const std::string& key, bool& out) {
  if (auto j = find(key)) {
    if (!j->is_boolean()) type_error(key, "true or false");
    out = j->get<bool>();
  }
}

void ParamReader::get(const std::string& key, int64_t& out) {
  if (auto j = find(key)) {
    if (j->is_number_integer()) {
      out = j->get<int64_t>();
    } else if (j->is_number_float() && std::isfinite(j->get<double>()) && j->get<double>() == std::floor(j->get<double>())) {
      out = static_cast<int64_t>(j->get<double>());
    } else {
      type_error(key, "a whole number");
    }
  }
}

void ParamReader::get(const std::string& key, double& out) {
  if (auto j = find(key)) {
    if (!j->is_number() || !std::isfinite(j->get<double>())) type_error(key, "a finite number");
    out = j->get<double>();
  }
}

void ParamReader::get(const std::string& key, std::string& out) {
  if (auto j = find(key)) {
    if (!j->is_string()) type_error(key, "a string");
    out = j->get<std::string>();
  }
}

void ParamReader::get(const std::string& key, std::optional<double>& out) {
  if (auto j = find(key)) {
    if (!j->is_number() || !std::isfinite(j->get<double>())) type_error(key, "a finite number");
    out = j->get<double>();
  }
}

void ParamReader::get(const std::string& key, std::vector<double>& out) {
  if (auto j = find(key)) {
    if (!j->is_array()) type_error(key, "a list of numbers");
    out.clear();
    for (const auto& x : *j) {
      if (!x.is_number() || !std::isfinite(x.get<double>())) type_error(key, "a list of finite numbers");
      out.push_back(x.get<double>());
    }
  }
}

void ParamReader::finish() const {
  if (!params_.is_object()) return;
  std::string unknown;
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    bool ok = false;
    for (const auto& k : known_) ok = ok || k == it.key();
    if (!ok) unknown += (unknown.empty() ? "'" : ", '") + it.key() + "'";
  }
  if (unknown.empty()) return;
  std::string valid;
  for (const auto& k : known_) valid += (valid.empty() ? "" : ", ") + k;
  if (valid.empty()) valid = "(none)";
  throw ConfigError(owner_ + ": unknown option " + unknown + "; valid options are: " + valid);
}

void ParamReader::require(bool ok, const std::string& key, const std::string& what) const {
  if (!ok) throw ConfigError(owner_ + ": option '" + key + "' " + what);
}

}  // namespace kestrel::tuners
