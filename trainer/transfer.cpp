// Transfer learning: init_from matched by name and shape with its report, the freezing plan
// (freeze patterns, freeze_first, gradual unfreezing) and the transferred parameters' lr multiplier.
#include "trainer/transfer.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.hpp"
#include "trainer/graph.hpp"
#include "trainer/model.hpp"
#include "trainer/safetensors.hpp"

namespace kestrel::trainer {
namespace fs = std::filesystem;
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  if (shape.empty()) return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

// Node names whose parameters are in the model, in graph order, with the parameters of each.
std::vector<std::pair<std::string, std::vector<std::string>>> params_by_node(const std::vector<TensorInfo>& params,
                                                                             const Graph& graph) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  int last = -1;
  for (const auto& p : params) {
    if (p.node != last) {
      out.emplace_back(graph.node(p.node).name, std::vector<std::string>{});
      last = p.node;
    }
    out.back().second.push_back(p.name);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- report

nlohmann::json TransferReport::to_json() const {
  nlohmann::json j;
  j["source"] = source;
  j["matched"] = matched;
  j["skipped"] = nlohmann::json::array();
  for (const auto& s : skipped) j["skipped"].push_back({{"name", s.name}, {"reason", s.reason}});
  j["frozen"] = frozen;
  j["unfrozen"] = nlohmann::json::array();
  for (const auto& e : unfrozen) j["unfrozen"].push_back({{"epoch", e.epoch}, {"params", e.params}});
  j["lr_mult"] = lr_mult;
  return j;
}

TransferReport TransferReport::from_json(const nlohmann::json& j) {
  TransferReport r;
  try {
    if (!j.is_object()) throw ConfigError("transfer report: not a JSON object");
    if (j.contains("source")) r.source = j.at("source").get<std::string>();
    if (j.contains("matched")) r.matched = j.at("matched").get<std::vector<std::string>>();
    if (j.contains("skipped"))
      for (const auto& s : j.at("skipped"))
        r.skipped.push_back({s.at("name").get<std::string>(), s.at("reason").get<std::string>()});
    if (j.contains("frozen")) r.frozen = j.at("frozen").get<std::vector<std::string>>();
    if (j.contains("unfrozen"))
      for (const auto& e : j.at("unfrozen"))
        r.unfrozen.push_back({e.at("epoch").get<int>(), e.at("params").get<std::vector<std::string>>()});
    if (j.contains("lr_mult")) r.lr_mult = j.at("lr_mult").get<float>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("transfer report: ") + e.what());
  }
  return r;
}

std::string TransferReport::summary() const {
  std::ostringstream o;
  if (!source.empty()) {
    o << "init_from " << source << ": " << matched.size() << " tensors loaded, " << skipped.size() << " skipped";
    if (lr_mult != 1.0f) o << "; loaded parameters train at " << lr_mult << " x lr";
    o << "\n";
    for (const auto& s : skipped) o << "  skipped " << s.name << ": " << s.reason << "\n";
  }
  if (!frozen.empty()) {
    o << "frozen at the start: " << frozen.size() << " parameters (";
    for (size_t i = 0; i < frozen.size(); ++i) o << (i ? ", " : "") << frozen[i];
    o << ")\n";
  }
  for (const auto& e : unfrozen) {
    o << "unfrozen from epoch " << e.epoch << ":";
    for (const auto& p : e.params) o << " " << p;
    o << "\n";
  }
  return o.str();
}

// ---------------------------------------------------------------- matching

std::string resolve_weights_file(const std::string& init_from) {
  std::string path = init_from;
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "latest")) {
      std::ifstream in(fs::path(path) / "latest");
      std::string name;
      std::getline(in, name);
      path = (fs::path(path) / name).string();
    }
    path = (fs::path(path) / "model.safetensors").string();
  }
  return path;
}

TransferReport match_and_load(Model& model, const SafetensorsFile& source, const std::set<std::string>& exclude) {
  TransferReport r;
  std::vector<TensorInfo> all = model.params();
  for (const auto& b : model.buffers()) all.push_back(b);
  std::set<std::string> in_model;
  for (const auto& t : all) {
    in_model.insert(t.name);
    if (exclude.count(t.name)) {
      r.skipped.push_back({t.name, "replaced head"});
      continue;
    }
    auto it = source.tensors.find(t.name);
    if (it == source.tensors.end()) {
      r.skipped.push_back({t.name, "not in source"});
      continue;
    }
    // Shape, not just size: a 10x128 weight must not load into a 128x10 or 5x256 one.
    if (it->second.shape != t.shape) {
      r.skipped.push_back({t.name, "shape " + shape_text(it->second.shape) + " vs " + shape_text(t.shape)});
      continue;
    }
    model.set_tensor(t.name, it->second.data);
    r.matched.push_back(t.name);
  }
  for (const auto& [name, _] : source.tensors)
    if (!in_model.count(name)) r.skipped.push_back({name, "not in model"});
  return r;
}

TransferReport load_matching_weights(Model& model, const std::string& init_from, bool replace_head) {
  const std::string path = resolve_weights_file(init_from);
  const SafetensorsFile f = read_safetensors(path);
  std::set<std::string> exclude;
  if (replace_head) {
    const std::string head = head_node(model.graph());
    for (const auto& p : model.params())
      if (model.graph().node(p.node).name == head) exclude.insert(p.name);
    for (const auto& b : model.buffers())
      if (model.graph().node(b.node).name == head) exclude.insert(b.name);
  }
  TransferReport r = match_and_load(model, f, exclude);
  r.source = path;
  if (r.matched.empty()) {
    std::string why;
    for (size_t i = 0; i < r.skipped.size() && i < 4; ++i)
      why += (i ? "; " : "") + r.skipped[i].name + ": " + r.skipped[i].reason;
    throw ConfigError(init_from + ": no tensor in it fits the model (names or shapes differ: " + why + ")");
  }
  return r;
}

std::vector<std::string> parametrised_nodes(const Graph& graph) {
  std::vector<std::string> out;
  for (const auto& [node, _] : params_by_node(graph.params(), graph)) out.push_back(node);
  return out;
}

std::string head_node(const Graph& graph) {
  const auto nodes = parametrised_nodes(graph);
  return nodes.empty() ? std::string() : nodes.back();
}

int set_lr_mult(Model& model, const std::vector<std::string>& names, float mult) {
  const std::set<std::string> wanted(names.begin(), names.end());
  int n = 0;
  for (auto& ref : model.param_refs())
    if (wanted.count(ref.name)) {
      ref.lr_mult = mult;
      ++n;
    }
  return n;
}

// ---------------------------------------------------------------- freezing

FreezePlan::FreezePlan(const Model& model, const std::vector<std::string>& patterns, const TransferSpec& spec)
    : unfreeze_after_(spec.unfreeze_after), unfreeze_every_(spec.unfreeze_every) {
  if (spec.freeze_first < 0 || spec.unfreeze_after < 0 || spec.unfreeze_every < 0)
    throw ConfigError("freeze_first, unfreeze_after and unfreeze_every must be >= 0");
  if (spec.unfreeze_every > 0 && spec.unfreeze_after == 0)
    throw ConfigError("unfreeze_every needs unfreeze_after (the epoch gradual unfreezing starts)");
  const auto nodes = params_by_node(model.params(), model.graph());
  if (spec.freeze_first > static_cast<int>(nodes.size()))
    throw ConfigError("freeze_first: " + std::to_string(spec.freeze_first) + " layers, but the model has only " +
                      std::to_string(nodes.size()) + " with parameters");
  std::set<std::string> frozen;
  for (int i = 0; i < spec.freeze_first; ++i) frozen.insert(nodes[i].second.begin(), nodes[i].second.end());
  // The same matching rule as Model::set_frozen, which also refuses a pattern matching nothing.
  for (const auto& pattern : patterns) {
    bool any = false;
    for (const auto& p : model.params()) {
      const bool hit = p.name == pattern || p.name.rfind(pattern + ".", 0) == 0 ||
                       fnmatch(pattern.c_str(), p.name.c_str(), 0) == 0;
      if (hit) {
        frozen.insert(p.name);
        any = true;
      }
    }
    if (!any) throw ConfigError("freeze: no parameter matches '" + pattern + "'");
  }
  for (const auto& [node, params] : nodes) {
    std::vector<std::string> g;
    for (const auto& p : params)
      if (frozen.count(p)) g.push_back(p);
    if (!g.empty()) groups_.push_back(std::move(g));
  }
}

std::vector<std::string> FreezePlan::frozen_at(int epoch) const {
  size_t released = 0;  // groups released from the back
  if (unfreeze_after_ > 0 && epoch >= unfreeze_after_) {
    released = unfreeze_every_ == 0 ? groups_.size()
                                    : static_cast<size_t>(1 + (epoch - unfreeze_after_) / unfreeze_every_);
    released = std::min(released, groups_.size());
  }
  std::vector<std::string> out;
  for (size_t i = 0; i + released < groups_.size(); ++i) out.insert(out.end(), groups_[i].begin(), groups_[i].end());
  return out;
}

std::vector<std::string> FreezePlan::apply(Model& model, int epoch) const {
  const auto now = frozen_at(epoch);
  const std::set<std::string> want(now.begin(), now.end());
  std::vector<std::string> released;
  for (size_t i = 0; i < model.params().size(); ++i) {
    const std::string& name = model.params()[i].name;
    const bool f = want.count(name) > 0;
    if (model.frozen(i) == f) continue;
    if (!f) released.push_back(name);
    model.set_frozen(name, f);
  }
  return released;
}

std::vector<UnfreezeEvent> FreezePlan::events(int epochs) const {
  std::vector<UnfreezeEvent> out;
  for (int e = 1; e < epochs; ++e) {
    const auto before = frozen_at(e - 1), now = frozen_at(e);
    if (before.size() == now.size()) continue;  // frozen sets only shrink
    const std::set<std::string> still(now.begin(), now.end());
    UnfreezeEvent ev{e + 1, {}};
    for (const auto& p : before)
      if (!still.count(p)) ev.params.push_back(p);
    out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace kestrel::trainer
