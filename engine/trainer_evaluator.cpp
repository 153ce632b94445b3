// TrainerEvaluator: trial parameters written into the training file (text placeholders, dotted paths, shorthands),
// the data set loaded once and shared, per-epoch reports with pruning through the trainer's epoch callback.
#include "engine/trainer_evaluator.hpp"
#include "nas/arch_space.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/warm_start.hpp"

namespace kestrel::engine {
namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string>& shorthands() {
  static const std::map<std::string, std::string> m = {
      {"lr", "optimizer.lr"},           {"optimizer", "optimizer.kind"},
      {"momentum", "optimizer.momentum"}, {"weight_decay", "optimizer.weight_decay"},
      {"batch_size", "training.batch_size"}, {"epochs", "training.epochs"},
      {"seed", "training.seed"},        {"label_smoothing", "loss.label_smoothing"},
      {"schedule", "schedule.kind"}};
  return m;
}

const std::set<std::string>& sections() {
  // Every top-level section of a training file (trainer/train.cpp), so any of its keys can be tuned by path.
  static const std::set<std::string> s = {"model",    "model_file", "data",        "loss",       "optimizer",
                                          "schedule", "training",   "pseudo_label", "adversarial", "robustness"};
  return s;
}

std::vector<std::string> split_path(const std::string& dotted) {
  std::vector<std::string> out;
  std::stringstream ss(dotted);
  std::string seg;
  while (std::getline(ss, seg, '.')) out.push_back(seg);
  return out;
}

bool is_index(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

YAML::Node value_node(const search::Value& v) {
  if (auto d = std::get_if<double>(&v)) return YAML::Node(*d);
  if (auto i = std::get_if<int64_t>(&v)) return YAML::Node(static_cast<long long>(*i));
  if (auto b = std::get_if<bool>(&v)) return YAML::Node(*b);
  return YAML::Node(std::get<std::string>(v));
}

// Sets `value` at a dotted path, creating maps on the way; a numeric segment indexes an existing list.
// yaml-cpp nodes are handles: reset() rebinds `cur`, whereas assignment would overwrite the node it points to.
void set_path(YAML::Node root, const std::string& dotted, const YAML::Node& value, const std::string& what) {
  auto segs = split_path(dotted);
  if (segs.empty()) throw ConfigError(what + ": empty path");
  YAML::Node cur;
  cur.reset(root);
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& s = segs[i];
    bool last = i + 1 == segs.size();
    if (cur.IsSequence()) {
      if (!is_index(s) || std::stoul(s) >= cur.size())
        throw ConfigError(what + ": '" + dotted + "': '" + s + "' is not an index of a list of " +
                          std::to_string(cur.size()));
      size_t idx = std::stoul(s);
      if (last) {
        cur[idx] = value;
        return;
      }
      YAML::Node next = cur[idx];
      cur.reset(next);
    } else {
      if (cur.IsScalar()) throw ConfigError(what + ": '" + dotted + "': '" + s + "' is inside a plain value");
      if (last) {
        cur[s] = value;
        return;
      }
      YAML::Node next = cur[s];
      cur.reset(next);
    }
  }
}

// Applies a JSON object of settings: nested objects recurse, other values are set at their (dotted) key.
void apply_settings(YAML::Node root, const nlohmann::json& j, const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object())
      apply_settings(root, *it, path);
    else
      set_path(root, path, YAML::Load(it->dump()), "trainer setting");
  }
}

std::string placeholder(const std::string& name) { return "${" + name + "}"; }

// training.init_from given as {storage, study, trial}: replaced by the weights file of that trial.
void resolve_study_init_from(YAML::Node root, const std::string& default_storage, nlohmann::json* resolved,
                             bool resolve) {
  if (!root["training"] || !root["training"].IsMap()) return;
  YAML::Node t = root["training"];
  if (!t["init_from"] || !t["init_from"].IsMap()) return;
  nlohmann::json ref = nlohmann::json::object();
  for (const auto& kv : t["init_from"]) {
    if (!kv.second.IsScalar()) throw ConfigError("training.init_from." + kv.first.Scalar() + ": expected a plain value");
    const std::string& v = kv.second.Scalar();
    bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    ref[kv.first.Scalar()] = digits && kv.first.Scalar() == "trial" ? nlohmann::json(std::stoll(v)) : nlohmann::json(v);
  }
  if (!resolve) {
    (void)TrialRef::from_json(ref);  // the reference itself must still be well-formed
    t.remove("init_from");
    return;
  }
  std::string storage = default_storage;
  if (storage.empty()) storage = "sqlite://" + (fs::current_path() / "kestrel.db").string();
  ResolvedTrial r = resolve_trial_weights(TrialRef::from_json(ref), storage);
  t["init_from"] = r.weights;
  if (resolved) *resolved = r.to_json();
}

}  // namespace

std::vector<std::string> TrainerEvaluator::metric_names() {
  return {"val_loss",  "val_accuracy", "train_loss",  "train_accuracy",   "test_loss",
          "test_accuracy", "param_count", "flops_per_sample", "wall_seconds"};
}

bool TrainerEvaluator::is_robust_metric(const std::string& name, double* epsilon) {
  if (name == "clean_accuracy" || name == "robustness_flags") return true;
  std::string eps;
  if (name.rfind("robust_accuracy@", 0) == 0) {
    eps = name.substr(16);
  } else if (name.rfind("robust_accuracy_", 0) == 0) {
    auto us = name.rfind('_');
    if (us <= 15) return false;
    eps = name.substr(us + 1);
  } else {
    return false;
  }
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(eps, &used);
  } catch (const std::exception&) {
    return false;
  }
  if (used != eps.size() || !(x >= 0)) return false;
  if (epsilon) *epsilon = x;
  return true;
}

TrainerEvaluator::TrainerEvaluator(TrainerEvaluatorOptions options, std::vector<search::Objective> objectives,
                                   SearchSpace space)
    : options_(std::move(options)), objectives_(std::move(objectives)), space_(std::move(space)) {
  std::ifstream in(options_.train_file);
  if (!in) throw ConfigError("trainer: cannot read the training file '" + options_.train_file + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  text_ = ss.str();
  if (!options_.nas_space.is_null()) {
    auto as = nas::make_arch_space(options_.nas_space);
    for (size_t i = 0; i < as->num_decisions(); ++i) arch_params_.insert(as->param_name(i));
    (void)nas::CompileOptions::from_json(options_.nas_compile);  // refuse bad compile options before any trial
    arch_space_ = as;
  }
  auto known = metric_names();
  std::vector<std::pair<std::string, std::string>> wanted;  // (what, metric)
  for (const auto& o : objectives_) wanted.push_back({"objective", o.name});
  for (const auto& c : options_.constraint_metrics) wanted.push_back({"constraint metric", c});
  for (const auto& [what, name] : wanted) {
    if (std::find(known.begin(), known.end(), name) == known.end() && !is_robust_metric(name)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError("trainer: " + what + " '" + name + "' is not a trainer metric (known: " + list +
                        "; with a robustness: section also clean_accuracy, robustness_flags, robust_accuracy@EPS, "
                        "robust_accuracy_ATTACK_EPS)");
    }
  }
}

nlohmann::json resolve_init_from_study(YAML::Node root, const std::string& default_storage) {
  nlohmann::json resolved;
  resolve_study_init_from(root, default_storage, &resolved, true);
  return resolved;
}

trainer::TrainSpec TrainerEvaluator::spec_for(const Config& config, std::optional<double> budget,
                                              const std::string& trial_dir) const {
  return build_spec(config, budget, trial_dir, nullptr);
}

trainer::TrainSpec TrainerEvaluator::build_spec(const Config& config, std::optional<double> budget,
                                                const std::string& trial_dir, nlohmann::json* init_from) const {
  // 1. Text placeholders (line numbers in the trainer's messages stay those of the file).
  std::string text = text_;
  std::set<std::string> in_text;
  for (const auto& p : space_.params()) {
    std::string ph = placeholder(p.name);
    if (text.find(ph) == std::string::npos) continue;
    in_text.insert(p.name);
    auto it = config.find(p.name);
    std::string v = it == config.end() ? "null"
                    : std::holds_alternative<std::string>(it->second)
                        ? nlohmann::json(std::get<std::string>(it->second)).dump()
                        : search::to_string(it->second);
    for (size_t pos = text.find(ph); pos != std::string::npos; pos = text.find(ph, pos + v.size()))
      text.replace(pos, ph.size(), v);
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(options_.train_file + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) throw ConfigError(options_.train_file + ": a training file must be a map");
  // 2. Settings of the sweep, then the parameters by path or shorthand.
  apply_settings(root, options_.settings, "");
  for (const auto& [name, value] : config) {
    if (in_text.count(name) || arch_params_.count(name)) continue;
    std::string path = name;
    if (auto s = shorthands().find(name); s != shorthands().end()) path = s->second;
    if (path.find('.') == std::string::npos)
      throw ConfigError("trainer: parameter '" + name + "' lands nowhere: use ${" + name +
                        "} in the training file, a dotted path (e.g. optimizer.weight_decay) or a shorthand");
    set_path(root, path, value_node(value), "trainer: parameter '" + name + "'");
  }
  if (budget) set_path(root, "training.epochs", YAML::Node(static_cast<long long>(std::llround(*budget))), "budget");
  resolve_study_init_from(root, options_.storage, init_from, options_.resolve_study_refs);
  trainer::TrainSpec spec = trainer::parse_train_spec(root, options_.train_file);
  if (arch_space_) {
    const auto& as = *std::static_pointer_cast<const nas::ArchSpace>(arch_space_);
    nas::CompileOptions co = nas::CompileOptions::from_json(options_.nas_compile);
    if (!options_.nas_compile.contains("input")) co.input = spec.model.input_shape();
    spec.model = as.compile(as.from_config(config), co);
  }
  if (!spec.checkpoint_dir.empty() && !trial_dir.empty())
    spec.checkpoint_dir = (fs::path(trial_dir) / "checkpoints").string();
  // Every trial keeps its final weights, so any trial of the study can be the starting point of another (init_from).
  // A save_weights of the training file would make every trial write the same file: the trial's folder wins.
  if (!trial_dir.empty())
    spec.save_weights = fs::absolute(fs::path(trial_dir) / "model.safetensors").lexically_normal().string();
  return spec;
}

void TrainerEvaluator::validate() const {
  for (const auto& p : space_.params()) {
    if (text_.find(placeholder(p.name)) != std::string::npos || arch_params_.count(p.name)) continue;
    std::string path = p.name;
    if (auto s = shorthands().find(p.name); s != shorthands().end()) path = s->second;
    auto segs = split_path(path);
    if (segs.size() < 2 || !sections().count(segs[0]))
      throw ConfigError("trainer: parameter '" + p.name + "' lands nowhere: use ${" + p.name +
                        "} in the training file, a dotted path into one of its sections (model, data, loss, "
                        "optimizer, schedule, training, pseudo_label, adversarial, robustness) or a shorthand (lr, optimizer, momentum, weight_decay, "
                        "batch_size, epochs, seed, label_smoothing, schedule)");
  }
  std::mt19937_64 rng(0);
  Config sample = space_.sample(rng);
  try {
    trainer::TrainSpec spec = spec_for(sample);
    // Robust metrics exist only when the file evaluates robustness, at the epsilons it lists.
    std::vector<std::string> names;
    for (const auto& o : objectives_) names.push_back(o.name);
    for (const auto& c : options_.constraint_metrics) names.push_back(c);
    for (const auto& n : names) {
      double eps = 0;
      if (!is_robust_metric(n, &eps)) continue;
      if (!spec.robustness.enabled)
        throw ConfigError("metric '" + n + "' needs a robustness: section in the training file (docs/robustness.md)");
      if (n == "clean_accuracy" || n == "robustness_flags") continue;
      bool listed = std::any_of(spec.robustness.epsilons.begin(), spec.robustness.epsilons.end(),
                                [&](double e) { return std::fabs(e - eps) <= 1e-9; });
      if (!listed)
        throw ConfigError("metric '" + n + "': epsilon " + search::to_string(search::Value{eps}) +
                          " is not among robustness.epsilons of the training file");
    }
  } catch (const ConfigError& e) {
    throw ConfigError(std::string("trainer: with parameters ") + search::config_to_json(sample).dump() + ": " +
                      e.what());
  }
}

std::shared_ptr<const trainer::TrainData> TrainerEvaluator::data_for(const trainer::TrainSpec& spec) {
  const std::string key = trainer::data_key(spec);  // every data setting, classes and labels_per_class included
  // Loading holds the lock: trials that need the same data wait for one load instead of each doing it.
  std::lock_guard lk(data_mu_);
  auto it = data_.find(key);
  if (it != data_.end()) return it->second;
  auto loaded = std::make_shared<const trainer::TrainData>(trainer::load_train_data(spec));
  data_[key] = loaded;
  return loaded;
}

// --- The checkpoint lifecycle (engine/checkpoints.hpp): the runner's folders reach the trainer. ---
namespace {

// Completed epochs of the checkpoint in `dir` (a checkpoint_dir with `latest`, or one checkpoint folder).
int checkpoint_epoch(const std::string& dir) {
  fs::path p(dir);
  if (fs::exists(p / "latest")) {
    std::ifstream in(p / "latest");
    std::string name;
    std::getline(in, name);
    p /= name;
  }
  std::ifstream in(p / "trainer.json");
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("epoch"))
    throw DataError("cannot continue from checkpoint " + dir + ": no readable trainer.json");
  return j["epoch"].get<int>();
}

// Points the trial's training at the runner's checkpoint folder and, when it continues another trial, at that
// trial's checkpoint: a promotion (or a PBT member's own next segment) restores everything and trains on to the
// trial's budget; a PBT exploit (attr pbt.donor) starts from the donor's weights with its own new hyperparameters
// and fresh optimizer state, training only the epochs from the donor's to the budget. Returns the epoch number of
// the restored state for reports (epochs count on from the parent's). Trials without a budget are never
// restored, so they write checkpoints only when the training file asks for them.
int apply_checkpoint_launch(trainer::TrainSpec& spec, const TrialHandle& trial, const EvalContext& ctx) {
  if (ctx.checkpoint_dir.empty()) return 0;
  if (!trial.budget() && !ctx.restore_from && spec.checkpoint_dir.empty()) return 0;
  const bool periodic = !spec.checkpoint_dir.empty();  // the file asked for checkpoints every N epochs
  spec.checkpoint_dir = ctx.checkpoint_dir;
  if (!periodic) spec.checkpoint_every = std::max(1, spec.epochs);  // only the end state is ever restored
  if (!ctx.restore_from) return 0;
  if (trial.record().attrs.count("pbt.donor")) {  // tuners/pbt.hpp kAttrPbtDonor
    const int done = checkpoint_epoch(*ctx.restore_from);
    spec.init_from = *ctx.restore_from;
    spec.epochs = std::max(1, spec.epochs - done);
    if (!periodic) spec.checkpoint_every = spec.epochs;
    return done;
  }
  spec.restore = *ctx.restore_from;
  return 0;
}

}  // namespace

void TrainerEvaluator::evaluate(TrialHandle& trial, const EvalContext& ctx) {
  trainer::TrainSpec spec;
  std::shared_ptr<const trainer::TrainData> data;
  nlohmann::json init_from;
  int epoch_offset = 0;  // epochs of the PBT donor this trial's weights come from
  try {
    spec = build_spec(trial.config(), trial.budget(), ctx.trial_dir, &init_from);
    data = data_for(spec);
    epoch_offset = apply_checkpoint_launch(spec, trial, ctx);
  } catch (const Error& e) {
    trial.tell_failed(e.what());
    return;
  }
  if (!init_from.is_null()) trial.set_attr("init_from", init_from.dump());

  bool pruned = false, stopped = false;
  int last_epoch = 0;
  trainer::TrainCallbacks cb;
  cb.on_epoch = [&](const trainer::EpochMetrics& m) {
    last_epoch = m.epoch;
    std::map<std::string, double> metrics;
    for (auto [k, v] : {std::pair{"val_loss", m.val_loss}, {"val_accuracy", m.val_accuracy},
                        {"train_loss", m.train_loss}, {"train_accuracy", m.train_accuracy}})
      if (std::isfinite(v)) metrics[k] = v;
    if (!metrics.empty()) trial.report(m.epoch + epoch_offset, metrics);
    // After the last epoch there is nothing left to save: the trial completes with its value instead of being
    // pruned at a rung that coincides with its final step (it would lose a finished result).
    const bool last = m.epoch >= spec.epochs;
    if (!last && trial.should_prune()) {
      pruned = true;
      return false;
    }
    if (ctx.stopping()) {
      stopped = true;
      return false;
    }
    return true;
  };

  trainer::TrainResult r;
  try {
    r = trainer::train(spec, *data, cb);
  } catch (const Error& e) {
    trial.tell_failed(e.what());
    return;
  }
  if (pruned) {
    trial.tell_pruned("pruned at epoch " + std::to_string(last_epoch));
    return;
  }
  if (stopped) {
    trial.tell_failed("stopped: the sweep was interrupted");
    return;
  }
  const trainer::EpochMetrics& m =
      spec.early_stopping.enabled && spec.early_stopping.restore_best ? r.best : r.final_metrics;
  // Robustness metrics: the report's own (clean_accuracy, robust_accuracy_<attack>_<eps>, robustness_flags), and
  // robust_accuracy@<eps> as the minimum over the attacks run at that epsilon.
  std::map<std::string, double> robust;
  if (r.robustness) {
    for (const auto& [k, v] : r.robustness->metrics()) robust[k] = v;
    for (const auto& res : r.robustness->results) {
      std::string k = "robust_accuracy@" + search::to_string(search::Value{res.epsilon});
      auto it = robust.find(k);
      if (it == robust.end() || res.accuracy < it->second) robust[k] = res.accuracy;
    }
  }
  auto metric = [&](const std::string& name) -> double {
    if (auto it = robust.find(name); it != robust.end()) return it->second;
    double eps = 0;
    if (is_robust_metric(name, &eps)) {
      // "0.10" in a sweep file names the same epsilon as the report's "0.1".
      for (const auto& res : r.robustness ? r.robustness->results : std::vector<trainer::AttackResult>{})
        if (std::fabs(res.epsilon - eps) <= 1e-9 && name.rfind("robust_accuracy@", 0) == 0)
          return robust["robust_accuracy@" + search::to_string(search::Value{res.epsilon})];
      return std::numeric_limits<double>::quiet_NaN();
    }
    if (name == "val_loss") return m.val_loss;
    if (name == "val_accuracy") return m.val_accuracy;
    if (name == "train_loss") return m.train_loss;
    if (name == "train_accuracy") return m.train_accuracy;
    if (name == "test_loss") return r.test_loss;
    if (name == "test_accuracy") return r.test_accuracy;
    if (name == "param_count") return static_cast<double>(r.param_count);
    if (name == "flops_per_sample") return static_cast<double>(r.flops_per_sample);
    return r.final_metrics.wall_seconds;
  };
  {
    nlohmann::json all = nlohmann::json::object();
    for (const auto& name : metric_names()) {
      double v = metric(name);
      if (std::isfinite(v)) all[name] = v;
    }
    for (const auto& [k, v] : robust)
      if (std::isfinite(v)) all[k] = v;
    trial.set_attr(kAttrMetrics, all.dump());
  }
  if (r.robustness) {
    trial.set_attr("robustness", r.robustness->to_json());
    auto flags = nlohmann::json::array();
    for (const auto& f : r.robustness->flags) flags.push_back({{"check", f.check}, {"message", f.message}});
    trial.set_attr("robustness_flags", flags.dump());
  }
  if (!r.transfer.empty()) trial.set_attr("transfer", r.transfer.to_json().dump());
  if (!r.pseudo_label.empty()) trial.set_attr("pseudo_label", r.pseudo_label.to_json().dump());
  if (!spec.save_weights.empty() && fs::exists(spec.save_weights))
    trial.set_attr(kAttrWeights, fs::absolute(spec.save_weights).lexically_normal().string());
  trial.set_attr("epochs_run", std::to_string(r.history.size()));
  trial.set_attr("best_epoch", std::to_string(r.best.epoch));
  if (std::isfinite(r.test_accuracy)) trial.set_attr("test_accuracy", search::to_string(search::Value{r.test_accuracy}));
  std::vector<double> values;
  for (const auto& o : objectives_) {
    values.push_back(metric(o.name));
    if (is_robust_metric(o.name) && !std::isfinite(values.back())) {
      trial.tell_failed("objective '" + o.name + "' was not measured: the trial's robustness: section " +
                        (r.robustness ? "has no attack at that epsilon" : "is missing or disabled"));
      return;
    }
  }
  trial.tell(values);
}

}  // namespace kestrel::engine
