// Checkpoint writer and reader: safetensors for tensors, nlohmann-json for the loop state.
#include "trainer/checkpoint.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "trainer/safetensors.hpp"

namespace kestrel::trainer {
namespace fs = std::filesystem;
namespace {

constexpr int kFormatVersion = 1;

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double num(const nlohmann::json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch}, {"steps", m.steps}, {"lr", m.lr}, {"train_loss", num(m.train_loss)},
          {"train_accuracy", num(m.train_accuracy)}, {"val_loss", num(m.val_loss)},
          {"val_accuracy", num(m.val_accuracy)}, {"samples_per_second", m.samples_per_second},
          {"epoch_seconds", m.epoch_seconds}, {"wall_seconds", m.wall_seconds}};
}

EpochMetrics from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch").get<int>();
  m.steps = j.at("steps").get<int64_t>();
  m.lr = j.at("lr").get<double>();
  m.train_loss = num(j.at("train_loss"));
  m.train_accuracy = num(j.at("train_accuracy"));
  m.val_loss = num(j.at("val_loss"));
  m.val_accuracy = num(j.at("val_accuracy"));
  m.samples_per_second = j.at("samples_per_second").get<double>();
  m.epoch_seconds = j.at("epoch_seconds").get<double>();
  m.wall_seconds = j.at("wall_seconds").get<double>();
  return m;
}

void write_tensors(const std::string& path, const std::map<std::string, std::vector<float>>& tensors,
                   const std::map<std::string, std::string>& meta) {
  std::vector<TensorView> views;
  for (const auto& [name, v] : tensors)
    views.push_back({name, {static_cast<int64_t>(v.size())}, v.data()});
  write_safetensors(path, views, meta);
}

std::string resolve(const std::string& path) {
  const fs::path p(path);
  if (fs::exists(p / "latest")) {
    std::ifstream in(p / "latest");
    std::string name;
    std::getline(in, name);
    if (name.empty()) throw DataError(path + "/latest is empty");
    return (p / name).string();
  }
  return path;
}

}  // namespace

void save_weights(Model& model, const std::string& path) {
  std::vector<TensorView> views;
  const auto sd = model.state_dict();
  auto add = [&](const TensorInfo& t) { views.push_back({t.name, t.shape, sd.at(t.name).data()}); };
  for (const auto& t : model.params()) add(t);
  for (const auto& t : model.buffers()) add(t);
  write_safetensors(path, views, {{"format", "kestrel-weights"}});
}

int load_weights(Model& model, const std::string& path, bool strict) {
  const SafetensorsFile f = read_safetensors(path);
  std::vector<TensorInfo> all = model.params();
  for (const auto& b : model.buffers()) all.push_back(b);
  int loaded = 0;
  for (const auto& t : all) {
    auto it = f.tensors.find(t.name);
    if (it == f.tensors.end()) {
      if (strict) throw ConfigError(path + ": no tensor '" + t.name + "' for the model");
      continue;
    }
    if (static_cast<int64_t>(it->second.data.size()) != t.size) {
      if (strict)
        throw ConfigError(path + ": tensor '" + t.name + "' has " + std::to_string(it->second.data.size()) +
                          " values, the model needs " + std::to_string(t.size));
      continue;
    }
    model.set_tensor(t.name, it->second.data);
    ++loaded;
  }
  if (strict && f.tensors.size() != all.size()) {
    for (const auto& [name, _] : f.tensors) {
      bool known = false;
      for (const auto& t : all) known = known || t.name == name;
      if (!known) throw ConfigError(path + ": tensor '" + name + "' is not part of the model");
    }
  }
  return loaded;
}

std::string write_checkpoint(const std::string& dir, Model& model, const Optimizer& optimizer,
                             const TrainerState& state,
                             const std::map<std::string, std::vector<float>>& best) {
  char name[32];
  std::snprintf(name, sizeof name, "epoch-%04d", state.epoch);
  const fs::path root(dir), final_dir = root / name, tmp = root / (std::string(name) + ".tmp");
  std::error_code ec;
  fs::create_directories(root, ec);
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) && ec) throw DataError("cannot create checkpoint folder " + tmp.string());

  save_weights(model, (tmp / "model.safetensors").string());
  std::map<std::string, std::vector<float>> opt;
  for (const auto& [k, v] : optimizer.state()) opt[k] = v;
  if (opt.empty()) opt["__empty__"] = {};
  write_tensors((tmp / "optimizer.safetensors").string(), opt, {{"kind", optimizer.spec().kind}});
  if (!best.empty()) write_tensors((tmp / "best.safetensors").string(), best, {});

  nlohmann::json j;
  j["format"] = "kestrel-checkpoint";
  j["version"] = kFormatVersion;
  j["epoch"] = state.epoch;
  j["steps"] = state.steps;
  j["loader"] = {{"epoch", state.loader.epoch}, {"position", state.loader.position}, {"seed", state.loader.seed}};
  j["dropout_counter"] = state.dropout_counter;
  j["seed"] = state.seed;
  j["early_stopping"] = {{"best_value", num(state.best_value)}, {"best_epoch", state.best_epoch},
                         {"bad_epochs", state.bad_epochs}};
  j["time_to_target"] = state.time_to_target;
  j["wall_seconds"] = state.wall_seconds;
  j["param_count"] = model.param_count();
  j["optimizer"] = optimizer.spec().kind;
  j["history"] = nlohmann::json::array();
  for (const auto& m : state.history) j["history"].push_back(to_json(m));
  {
    std::ofstream out(tmp / "trainer.json");
    out << j.dump(2) << "\n";
    if (!out) throw DataError("cannot write " + (tmp / "trainer.json").string());
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) throw DataError("cannot move checkpoint into place at " + final_dir.string() + ": " + ec.message());
  const fs::path latest_tmp = root / "latest.tmp";
  {
    std::ofstream out(latest_tmp);
    out << name << "\n";
    if (!out) throw DataError("cannot write " + latest_tmp.string());
  }
  fs::rename(latest_tmp, root / "latest", ec);
  if (ec) throw DataError("cannot update " + (root / "latest").string());
  return final_dir.string();
}

TrainerState read_checkpoint(const std::string& path, Model& model, Optimizer& optimizer,
                             std::map<std::string, std::vector<float>>& best) {
  const fs::path dir(resolve(path));
  if (!fs::exists(dir / "trainer.json")) throw DataError(dir.string() + ": not a checkpoint (no trainer.json)");
  nlohmann::json j;
  try {
    std::ifstream in(dir / "trainer.json");
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError((dir / "trainer.json").string() + ": " + e.what());
  }
  if (j.value("format", "") != "kestrel-checkpoint" || j.value("version", 0) != kFormatVersion)
    throw DataError(dir.string() + ": unknown checkpoint format or version");
  if (j.at("param_count").get<int64_t>() != model.param_count())
    throw ConfigError(dir.string() + ": checkpoint has " + std::to_string(j.at("param_count").get<int64_t>()) +
                      " parameters, the model " + std::to_string(model.param_count()));
  if (j.at("optimizer").get<std::string>() != optimizer.spec().kind)
    throw ConfigError(dir.string() + ": checkpoint optimizer is " + j.at("optimizer").get<std::string>() +
                      ", the run uses " + optimizer.spec().kind);
  load_weights(model, (dir / "model.safetensors").string(), true);
  const SafetensorsFile opt = read_safetensors((dir / "optimizer.safetensors").string());
  OptimizerState os;
  for (const auto& [k, t] : opt.tensors)
    if (k != "__empty__") os.emplace_back(k, t.data);
  optimizer.load_state(os);
  best.clear();
  if (fs::exists(dir / "best.safetensors"))
    for (auto& [k, t] : read_safetensors((dir / "best.safetensors").string()).tensors) best[k] = t.data;

  TrainerState s;
  try {
    s.epoch = j.at("epoch").get<int>();
    s.steps = j.at("steps").get<int64_t>();
    s.loader.epoch = j.at("loader").at("epoch").get<int64_t>();
    s.loader.position = j.at("loader").at("position").get<int64_t>();
    s.loader.seed = j.at("loader").at("seed").get<uint64_t>();
    s.dropout_counter = j.at("dropout_counter").get<uint64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.best_value = num(j.at("early_stopping").at("best_value"));
    s.best_epoch = j.at("early_stopping").at("best_epoch").get<int>();
    s.bad_epochs = j.at("early_stopping").at("bad_epochs").get<int>();
    s.time_to_target = j.at("time_to_target").get<double>();
    s.wall_seconds = j.at("wall_seconds").get<double>();
    for (const auto& m : j.at("history")) s.history.push_back(from_json(m));
  } catch (const nlohmann::json::exception& e) {
    throw DataError((dir / "trainer.json").string() + ": " + e.what());
  }
  model.set_dropout_counter(s.dropout_counter);
  return s;
}

}  // namespace kestrel::trainer
