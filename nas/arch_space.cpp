// ArchSpace helpers shared by every space (config conversion, sampling, single-edit neighbours, one-hot features)
// and the JSON factory.
#include "nas/arch_space.hpp"

#include <set>

#include "common/error.hpp"
#include "nas/cell.hpp"
#include "nas/macro.hpp"

namespace kestrel::nas {

CompileOptions CompileOptions::from_json(const nlohmann::json& j) {
  CompileOptions o;
  if (j.is_null()) return o;
  if (!j.is_object()) throw ConfigError("compile options: expected an object");
  for (const auto& [key, v] : j.items()) {
    try {
      if (key == "input") {
        auto s = v.get<std::vector<int>>();
        if (s.size() != 3) throw ConfigError("compile options: input must be [c, h, w]");
        o.input = {s[0], s[1], s[2]};
      } else if (key == "num_classes") o.num_classes = v.get<int>();
      else if (key == "channels") o.channels = v.get<int>();
      else if (key == "cells_per_stage") o.cells_per_stage = v.get<int>();
      else if (key == "stages") o.stages = v.get<int>();
      else
        throw ConfigError("compile options: unknown key '" + key +
                          "'; valid keys are input, num_classes, channels, cells_per_stage, stages");
    } catch (const nlohmann::json::exception&) {
      throw ConfigError("compile options: key '" + key + "' has the wrong type");
    }
  }
  return o;
}

void ArchSpace::add_decision(std::string name, std::vector<search::Value> choices) {
  names_.push_back(std::move(name));
  choices_.push_back(std::move(choices));
}

std::vector<search::ParamSpec> ArchSpace::params() const {
  std::vector<search::ParamSpec> out;
  for (size_t i = 0; i < num_decisions(); ++i) out.push_back(search::ParamSpec::categorical(names_[i], choices_[i]));
  return out;
}

std::vector<double> ArchSpace::features(const Arch& a, const std::string& encoding) const {
  if (encoding != "onehot") {
    std::string valid;
    for (const auto& e : encodings()) valid += (valid.empty() ? "" : ", ") + e;
    throw ConfigError("unknown architecture encoding '" + encoding + "' for a " + kind() + " space; valid: " + valid);
  }
  std::vector<double> f;
  for (size_t i = 0; i < num_decisions(); ++i) {
    const bool on = active(a, i);
    for (size_t k = 0; k < choices_[i].size(); ++k) f.push_back(on && a[i] == static_cast<int>(k) ? 1.0 : 0.0);
  }
  return f;
}

Arch ArchSpace::normalize(Arch a) const {
  for (size_t i = 0; i < a.size() && i < num_decisions(); ++i)
    if (!active(a, i)) a[i] = 0;
  return a;
}

search::Config ArchSpace::to_config(const Arch& a) const {
  search::Config c;
  for (size_t i = 0; i < num_decisions(); ++i)
    if (active(a, i)) c[names_[i]] = choices_[i].at(a.at(i));
  return c;
}

Arch ArchSpace::from_config(const search::Config& c) const {
  Arch a(num_decisions(), 0);
  // Decisions are read in order; active() of decision i only looks at earlier ones (depth precedes layers).
  for (size_t i = 0; i < num_decisions(); ++i) {
    auto it = c.find(names_[i]);
    if (it == c.end()) {
      if (active(a, i)) throw ConfigError("architecture parameter '" + names_[i] + "' is missing from the config");
      continue;
    }
    int found = -1;
    for (size_t k = 0; k < choices_[i].size(); ++k)
      if (search::values_equal(choices_[i][k], it->second)) found = static_cast<int>(k);
    if (found < 0)
      throw ConfigError("architecture parameter '" + names_[i] + "' has value '" + search::to_string(it->second) +
                        "', which is not one of its choices");
    a[i] = found;
  }
  return normalize(a);
}

Arch ArchSpace::sample(tuners::Rng& rng) const {
  Arch a(num_decisions());
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int>(rng.below(static_cast<int64_t>(choices_[i].size())));
  return normalize(a);
}

Arch ArchSpace::sample_valid(tuners::Rng& rng) const {
  for (int tries = 0; tries < 10000; ++tries) {
    Arch a = sample(rng);
    if (check(a).valid) return a;
  }
  throw ConfigError("the " + kind() + " space has no valid architecture in 10,000 random draws");
}

std::vector<Arch> ArchSpace::neighbors(const Arch& a0) const {
  const Arch a = normalize(a0);
  const std::string key = iso_key(a), canon = canonical(a);
  std::vector<Arch> differ, renamed;
  std::set<std::string> seen_canon;
  for (size_t i = 0; i < num_decisions(); ++i) {
    if (!active(a, i)) continue;
    for (int k = 0; k < static_cast<int>(choices_[i].size()); ++k) {
      if (k == a[i]) continue;
      Arch b = a;
      b[i] = k;
      b = normalize(b);
      if (!check(b).valid) continue;
      const std::string cb = canonical(b);
      if (cb == canon || !seen_canon.insert(cb).second) continue;
      (iso_key(b) != key ? differ : renamed).push_back(std::move(b));
    }
  }
  return differ.empty() ? renamed : differ;
}

double ArchSpace::size() const {
  double n = 1.0;
  for (const auto& c : choices_) n *= static_cast<double>(c.size());
  return n;
}

std::shared_ptr<const ArchSpace> make_arch_space(const nlohmann::json& spec) {
  if (!spec.is_null() && !spec.is_object()) throw ConfigError("nas space: expected an object with a 'type'");
  std::string type = "cell";
  if (spec.is_object() && spec.contains("type")) {
    if (!spec["type"].is_string()) throw ConfigError("nas space: 'type' must be a string (cell or macro)");
    type = spec["type"].get<std::string>();
  }
  if (type == "cell") return CellSpace::from_json(spec);
  if (type == "macro") return MacroSpace::from_json(spec);
  throw ConfigError("nas space: unknown type '" + type + "'; valid types are cell, macro");
}

std::vector<search::ParamSpec> arch_params(const nlohmann::json& spec) { return make_arch_space(spec)->params(); }

trainer::Graph compile_arch(const ArchSpace& space, const std::string& canonical, const CompileOptions& o) {
  return space.compile(space.parse(canonical), o);
}

}  // namespace kestrel::nas
