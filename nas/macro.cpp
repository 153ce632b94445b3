// MacroSpace: conditional per-layer decisions, canonical strings and compilation into a chain of conv blocks with
// optional residual connections and periodic pooling.
#include "nas/macro.hpp"

#include <algorithm>
#include <set>

#include "common/error.hpp"

namespace kestrel::nas {
namespace {

const std::vector<std::string> kActivations = {"relu", "gelu", "tanh", "leaky_relu", "sigmoid"};
const std::vector<std::string> kTypes = {"conv", "sepconv"};

trainer::Op activation(const std::string& name) {
  namespace op = trainer::ops;
  if (name == "relu") return op::relu();
  if (name == "gelu") return op::gelu();
  if (name == "tanh") return op::tanh();
  if (name == "leaky_relu") return op::leaky_relu();
  return op::sigmoid();
}

template <class T>
void unique_nonempty(const std::vector<T>& v, const std::string& key) {
  if (v.empty()) throw ConfigError("macro space: '" + key + "' is empty");
  std::set<T> s(v.begin(), v.end());
  if (s.size() != v.size()) throw ConfigError("macro space: '" + key + "' lists a value twice");
}

}  // namespace

MacroSpec MacroSpec::from_json(const nlohmann::json& j) {
  MacroSpec s;
  if (!j.is_object()) throw ConfigError("macro space: expected an object");
  for (const auto& [key, v] : j.items()) {
    try {
      if (key == "type") continue;
      else if (key == "depths") s.depths = v.get<std::vector<int64_t>>();
      else if (key == "types") s.types = v.get<std::vector<std::string>>();
      else if (key == "widths") s.widths = v.get<std::vector<int64_t>>();
      else if (key == "kernels") s.kernels = v.get<std::vector<int64_t>>();
      else if (key == "activations") s.activations = v.get<std::vector<std::string>>();
      else if (key == "skip") s.skip = v.get<bool>();
      else if (key == "reduce_every") s.reduce_every = v.get<int>();
      else if (key == "prefix") s.prefix = v.get<std::string>();
      else
        throw ConfigError("macro space: unknown key '" + key +
                          "'; valid keys are type, depths, types, widths, kernels, activations, skip, reduce_every, prefix");
    } catch (const nlohmann::json::exception&) {
      throw ConfigError("macro space: key '" + key + "' has the wrong type");
    }
  }
  return s;
}

MacroSpace::MacroSpace(MacroSpec spec) : spec_(std::move(spec)) {
  prefix_ = spec_.prefix;
  if (prefix_.empty()) throw ConfigError("macro space: the parameter prefix is empty");
  unique_nonempty(spec_.depths, "depths");
  unique_nonempty(spec_.types, "types");
  unique_nonempty(spec_.widths, "widths");
  unique_nonempty(spec_.kernels, "kernels");
  unique_nonempty(spec_.activations, "activations");
  for (auto d : spec_.depths)
    if (d < 1 || d > 64) throw ConfigError("macro space: depths must be in [1, 64]");
  for (auto w : spec_.widths)
    if (w < 1) throw ConfigError("macro space: widths must be >= 1");
  for (auto k : spec_.kernels)
    if (k < 1 || k % 2 == 0) throw ConfigError("macro space: kernels must be odd and >= 1");
  for (const auto& t : spec_.types)
    if (std::find(kTypes.begin(), kTypes.end(), t) == kTypes.end())
      throw ConfigError("macro space: unknown layer type '" + t + "'; valid types are conv, sepconv");
  for (const auto& a : spec_.activations)
    if (std::find(kActivations.begin(), kActivations.end(), a) == kActivations.end())
      throw ConfigError("macro space: unknown activation '" + a + "'; valid are relu, gelu, tanh, leaky_relu, sigmoid");
  if (spec_.reduce_every < 1) throw ConfigError("macro space: reduce_every must be >= 1");
  max_depth_ = static_cast<int>(*std::max_element(spec_.depths.begin(), spec_.depths.end()));
  add_decision(prefix_ + "_depth", std::vector<search::Value>(spec_.depths.begin(), spec_.depths.end()));
  for (int l = 0; l < max_depth_; ++l) {
    const std::string p = prefix_ + "_l" + std::to_string(l) + "_";
    add_decision(p + "type", std::vector<search::Value>(spec_.types.begin(), spec_.types.end()));
    add_decision(p + "width", std::vector<search::Value>(spec_.widths.begin(), spec_.widths.end()));
    add_decision(p + "kernel", std::vector<search::Value>(spec_.kernels.begin(), spec_.kernels.end()));
    add_decision(p + "act", std::vector<search::Value>(spec_.activations.begin(), spec_.activations.end()));
    if (spec_.skip) add_decision(p + "skip", {search::Value{false}, search::Value{true}});
  }
}

std::shared_ptr<const MacroSpace> MacroSpace::from_json(const nlohmann::json& j) {
  return std::make_shared<MacroSpace>(MacroSpec::from_json(j));
}

std::vector<search::ParamSpec> MacroSpace::params() const {
  std::vector<search::ParamSpec> out = ArchSpace::params();
  const int min_depth = static_cast<int>(*std::min_element(spec_.depths.begin(), spec_.depths.end()));
  for (size_t i = 1; i < out.size(); ++i) {
    const int l = static_cast<int>((i - 1) / per_layer());
    if (l < min_depth) continue;
    search::Condition c;
    c.parent = param_name(0);
    for (auto d : spec_.depths)
      if (d > l) c.values.push_back(search::Value{d});
    out[i].condition = c;
  }
  return out;
}

bool MacroSpace::active(const Arch& a, size_t i) const {
  if (i == 0) return true;
  const int l = static_cast<int>((i - 1) / per_layer());
  return a.at(0) >= 0 && a[0] < static_cast<int>(spec_.depths.size()) && l < depth(a);
}

Validity MacroSpace::check(const Arch& a) const {
  Validity v;
  if (a.size() != num_decisions()) {
    v.valid = false;
    v.reason = "a macro architecture has " + std::to_string(num_decisions()) + " decisions, got " + std::to_string(a.size());
    return v;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] < 0 || a[i] >= static_cast<int>(choices(i).size())) {
      v.valid = false;
      v.reason = "decision " + param_name(i) + " has index " + std::to_string(a[i]) + " out of range";
      return v;
    }
    if (!active(a, i)) v.dead.push_back(i);
  }
  return v;
}

std::string MacroSpace::canonical(const Arch& a) const {
  std::string s = "|";
  for (int l = 0; l < depth(a); ++l) {
    s += spec_.types.at(a.at(at(l, 0))) + "-w" + std::to_string(spec_.widths.at(a.at(at(l, 1)))) + "-k" +
         std::to_string(spec_.kernels.at(a.at(at(l, 2)))) + "-" + spec_.activations.at(a.at(at(l, 3)));
    if (spec_.skip && a.at(at(l, 4)) == 1) s += "-skip";
    s += "|";
  }
  return s;
}

Arch MacroSpace::parse(const std::string& s) const {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError("macro architecture '" + s + "': " + why + " (expected |type-wW-kK-act[-skip]|...)");
  };
  if (s.size() < 2 || s.front() != '|' || s.back() != '|') throw bad("it must start and end with '|'");
  std::vector<std::string> layers;
  for (size_t p = 1; p < s.size();) {
    const size_t q = s.find('|', p);
    layers.push_back(s.substr(p, q - p));
    p = q + 1;
  }
  Arch a(num_decisions(), 0);
  auto idx = [&](const auto& list, const auto& value, const std::string& what) {
    for (size_t k = 0; k < list.size(); ++k)
      if (list[k] == value) return static_cast<int>(k);
    throw bad("unknown " + what);
  };
  a[0] = idx(spec_.depths, static_cast<int64_t>(layers.size()), "depth " + std::to_string(layers.size()));
  for (int l = 0; l < static_cast<int>(layers.size()); ++l) {
    std::vector<std::string> f;
    for (size_t p = 0; p <= layers[l].size();) {
      size_t q = layers[l].find('-', p);
      if (q == std::string::npos) q = layers[l].size();
      f.push_back(layers[l].substr(p, q - p));
      p = q + 1;
    }
    const bool has_skip = f.size() == 5 && f[4] == "skip";
    if (f.size() != 4 && !has_skip) throw bad("layer " + std::to_string(l) + " is '" + layers[l] + "'");
    if (has_skip && !spec_.skip) throw bad("this space has no skip connections");
    if (f[1].size() < 2 || f[1][0] != 'w' || f[2].size() < 2 || f[2][0] != 'k') throw bad("layer " + std::to_string(l) + " is '" + layers[l] + "'");
    a[at(l, 0)] = idx(spec_.types, f[0], "type '" + f[0] + "'");
    int64_t w = 0, k = 0;
    try {
      w = std::stoll(f[1].substr(1));
      k = std::stoll(f[2].substr(1));
    } catch (const std::exception&) {
      throw bad("layer " + std::to_string(l) + " has a non-numeric width or kernel");
    }
    a[at(l, 1)] = idx(spec_.widths, w, "width " + f[1]);
    a[at(l, 2)] = idx(spec_.kernels, k, "kernel " + f[2]);
    a[at(l, 3)] = idx(spec_.activations, f[3], "activation '" + f[3] + "'");
    if (spec_.skip) a[at(l, 4)] = has_skip ? 1 : 0;
  }
  return a;
}

trainer::Graph MacroSpace::compile(const Arch& a, const CompileOptions& o) const {
  const Validity v = check(a);
  if (!v.valid) throw ConfigError("cannot compile a macro architecture: " + v.reason);
  namespace op = trainer::ops;
  trainer::Graph g(o.input, trainer::InitKind::kKaimingNormal);
  int x = g.input();
  for (int l = 0; l < depth(a); ++l) {
    const std::string p = "l" + std::to_string(l);
    const int w = static_cast<int>(spec_.widths[a[at(l, 1)]]);
    const int k = static_cast<int>(spec_.kernels[a[at(l, 2)]]);
    const trainer::Shape in = g.node(x).shape;
    int y = x;
    if (spec_.types[a[at(l, 0)]] == "conv") {
      y = g.add(op::conv2d(w, k, 1, k / 2, 1, false), y, p + "_conv");
    } else {
      y = g.add(op::conv2d(in.c, k, 1, k / 2, in.c, false), y, p + "_dw");
      y = g.add(op::conv2d(w, 1, 1, 0, 1, false), y, p + "_pw");
    }
    y = g.add(op::batch_norm(), y, p + "_bn");
    y = g.add(activation(spec_.activations[a[at(l, 3)]]), y, p + "_act");
    if (spec_.skip && a[at(l, 4)] == 1) {
      int s = x;
      if (in.c != w) s = g.add(op::conv2d(w, 1, 1, 0, 1, false), x, p + "_proj");
      y = g.add_node(op::add(), {y, s}, p + "_add");
    }
    x = y;
    const trainer::Shape out = g.node(x).shape;
    if ((l + 1) % spec_.reduce_every == 0 && l + 1 < depth(a) && out.h >= 4 && out.w >= 4)
      x = g.add(op::max_pool(2), x, p + "_pool");
  }
  x = g.add(op::global_avg_pool(), x, "head_pool");
  g.add(op::linear(o.num_classes), x, "classifier");
  return g;
}

double MacroSpace::size() const {
  const double layer = static_cast<double>(spec_.types.size() * spec_.widths.size() * spec_.kernels.size() *
                                           spec_.activations.size() * (spec_.skip ? 2 : 1));
  double n = 0.0;
  for (auto d : spec_.depths) {
    double m = 1.0;
    for (int64_t l = 0; l < d; ++l) m *= layer;
    n += m;
  }
  return n;
}

}  // namespace kestrel::nas
