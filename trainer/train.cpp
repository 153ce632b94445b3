// The training loop (epochs, validation, early stopping, checkpoints, resume) and the reader of
// training files (TrainSpec).
#include "trainer/train.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/model.hpp"
#include "trainer/pseudo_label.hpp"
#include "trainer/transfer.hpp"

namespace kestrel::trainer {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- YAML helpers

std::string at(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.line < 0 ? file : file + ":" + std::to_string(m.line + 1);
}

void check_keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& file,
                const std::string& section) {
  if (!map.IsMap()) throw ConfigError(at(file, map) + ": section '" + section + "' must be a map");
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k))
      throw ConfigError(at(file, kv.first) + ": unknown key '" + section + "." + k + "'");
  }
}

template <typename T>
void read(const YAML::Node& map, const char* key, T& out, const std::string& file, const std::string& section) {
  const YAML::Node v = map[key];
  if (!v) return;
  try {
    out = v.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(at(file, v) + ": key '" + section + "." + key + "': cannot read '" + YAML::Dump(v) + "'");
  }
}

std::string relative_to(const std::string& file, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute() || file.empty()) return path;
  return (fs::path(file).parent_path() / path).lexically_normal().string();
}

// ---------------------------------------------------------------- evaluation

struct EvalResult {
  double loss = std::numeric_limits<double>::quiet_NaN();
  double accuracy = std::numeric_limits<double>::quiet_NaN();
};

EvalResult evaluate(Model& model, Loss& loss, const Dataset& data, int batch, float* staging) {
  EvalResult r;
  if (data.n == 0) return r;
  Backend& be = model.backend();
  const int64_t ss = data.sample_size();
  double sum = 0.0;
  int64_t correct = 0;
  for (int64_t start = 0; start < data.n; start += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, data.n - start));
    const float* x = data.x.data() + start * ss;
    if (!be.is_host()) {
      be.upload(staging, x, static_cast<size_t>(n) * ss);
      x = staging;
    }
    const float* out = model.forward(x, n, false);
    const BatchLoss b = loss.compute(out, data.y.data() + start, n, false);
    sum += b.loss_sum;
    correct += b.correct;
  }
  r.loss = sum / static_cast<double>(data.n);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(data.n);
  return r;
}

bool minimise(const EarlyStopping& es) {
  if (es.mode == "min") return true;
  if (es.mode == "max") return false;
  return es.monitor.find("loss") != std::string::npos;
}

}  // namespace

// ---------------------------------------------------------------- spec

TrainSpec parse_train_spec(const YAML::Node& root, const std::string& file) {
  if (!root || !root.IsMap()) throw ConfigError(file + ": a training file must be a map");
  check_keys(root, {"model", "model_file", "data", "loss", "optimizer", "schedule", "training", "pseudo_label",
                    "adversarial", "robustness"}, file, "");
  TrainSpec s;
  s.file = file;
  if (root["model"] && root["model_file"])
    throw ConfigError(at(file, root["model_file"]) + ": give either 'model' or 'model_file', not both");
  if (root["model"]) {
    s.model = parse_model(root["model"], file);
  } else if (root["model_file"]) {
    s.model = load_model_file(relative_to(file, root["model_file"].as<std::string>()));
  } else {
    throw ConfigError(file + ": missing 'model' (or 'model_file')");
  }

  if (const YAML::Node d = root["data"]) {
    check_keys(d, {"dataset", "dir", "train_images", "train_labels", "test_images", "test_labels",
                   "train_path", "test_path", "label_column", "validation", "subset", "test_subset",
                   "normalize", "augment", "classes", "labels_per_class"}, file, "data");
    DataSpec& ds = s.data;
    read(d, "dataset", ds.dataset, file, "data");
    static const std::set<std::string> kinds = {"fashion_mnist", "mnist", "idx", "csv"};
    if (!kinds.count(ds.dataset))
      throw ConfigError(at(file, d["dataset"]) + ": key 'data.dataset': '" + ds.dataset +
                        "' is not one of fashion_mnist, mnist, idx, csv");
    read(d, "dir", ds.dir, file, "data");
    for (auto [key, field] : {std::pair{"train_images", &ds.train_images}, {"train_labels", &ds.train_labels},
                              {"test_images", &ds.test_images}, {"test_labels", &ds.test_labels},
                              {"train_path", &ds.train_path}, {"test_path", &ds.test_path}}) {
      read(d, key, *field, file, "data");
      *field = relative_to(file, *field);
    }
    if (d["dir"]) ds.dir = relative_to(file, ds.dir);
    read(d, "label_column", ds.label_column, file, "data");
    read(d, "validation", ds.validation_fraction, file, "data");
    if (!(ds.validation_fraction >= 0.0 && ds.validation_fraction < 1.0))
      throw ConfigError(at(file, d["validation"]) + ": key 'data.validation' must be in [0, 1)");
    read(d, "subset", ds.subset, file, "data");
    read(d, "test_subset", ds.test_subset, file, "data");
    read(d, "normalize", ds.normalize, file, "data");
    if (const YAML::Node a = d["augment"]) {
      check_keys(a, {"pad_crop", "hflip"}, file, "data.augment");
      read(a, "pad_crop", ds.augment.pad_crop, file, "data.augment");
      read(a, "hflip", ds.augment.hflip, file, "data.augment");
    }
    // Transfer learning / few labels (see DataSpec).
    if (const YAML::Node cl = d["classes"]) {
      if (!cl.IsSequence() || cl.size() == 0)
        throw ConfigError(at(file, cl) + ": key 'data.classes' must be a non-empty list of class indices");
      read(d, "classes", ds.classes, file, "data");
      std::set<int> seen;
      for (int c : ds.classes)
        if (c < 0 || !seen.insert(c).second)
          throw ConfigError(at(file, cl) + ": key 'data.classes': class " + std::to_string(c) +
                            " is negative or listed twice");
    }
    read(d, "labels_per_class", ds.labels_per_class, file, "data");
    if (ds.labels_per_class < 0)
      throw ConfigError(at(file, d["labels_per_class"]) + ": key 'data.labels_per_class' must be >= 0");
    if (ds.dataset == "mnist" && !d["dir"]) throw ConfigError(at(file, d) + ": data.dataset mnist needs 'dir'");
    if (ds.dataset == "csv" && ds.train_path.empty()) throw ConfigError(at(file, d) + ": data.dataset csv needs 'train_path'");
    if (ds.dataset == "idx" && (ds.train_images.empty() || ds.train_labels.empty()))
      throw ConfigError(at(file, d) + ": data.dataset idx needs 'train_images' and 'train_labels'");
  }

  if (const YAML::Node l = root["loss"]) {
    check_keys(l, {"kind", "label_smoothing"}, file, "loss");
    std::string kind = "cross_entropy";
    read(l, "kind", kind, file, "loss");
    try {
      s.loss.kind = parse_loss_kind(kind);
    } catch (const ConfigError& e) {
      throw ConfigError(at(file, l["kind"]) + ": key 'loss.kind': " + e.what());
    }
    read(l, "label_smoothing", s.loss.label_smoothing, file, "loss");
    if (!(s.loss.label_smoothing >= 0.0f && s.loss.label_smoothing < 1.0f))
      throw ConfigError(at(file, l["label_smoothing"]) + ": key 'loss.label_smoothing' must be in [0, 1)");
  }

  if (const YAML::Node o = root["optimizer"]) {
    check_keys(o, {"kind", "lr", "momentum", "dampening", "beta1", "beta2", "eps", "rho", "alpha",
                   "weight_decay", "lr_decay", "initial_accumulator", "nesterov", "centered", "amsgrad",
                   "clip_norm"}, file, "optimizer");
    OptimizerSpec& os = s.optimizer;
    read(o, "kind", os.kind, file, "optimizer");
    read(o, "lr", s.lr, file, "optimizer");
    read(o, "momentum", os.momentum, file, "optimizer");
    read(o, "dampening", os.dampening, file, "optimizer");
    read(o, "beta1", os.beta1, file, "optimizer");
    read(o, "beta2", os.beta2, file, "optimizer");
    read(o, "eps", os.eps, file, "optimizer");
    read(o, "rho", os.rho, file, "optimizer");
    read(o, "alpha", os.alpha, file, "optimizer");
    read(o, "weight_decay", os.weight_decay, file, "optimizer");
    read(o, "lr_decay", os.lr_decay, file, "optimizer");
    read(o, "initial_accumulator", os.initial_accumulator, file, "optimizer");
    read(o, "nesterov", os.nesterov, file, "optimizer");
    read(o, "centered", os.centered, file, "optimizer");
    read(o, "amsgrad", os.amsgrad, file, "optimizer");
    read(o, "clip_norm", os.clip_norm, file, "optimizer");
    if (!(s.lr > 0.0f)) throw ConfigError(at(file, o["lr"] ? o["lr"] : o) + ": key 'optimizer.lr' must be > 0");
    try {
      make_optimizer(os);
    } catch (const ConfigError& e) {
      throw ConfigError(at(file, o) + ": section 'optimizer': " + e.what());
    }
  }

  if (const YAML::Node c = root["schedule"]) {
    check_keys(c, {"kind", "unit", "step_size", "gamma", "min_lr", "warmup_steps", "max_lr", "pct_start",
                   "div_factor", "final_div_factor", "three_phase"}, file, "schedule");
    ScheduleSpec& cs = s.schedule;
    read(c, "kind", cs.kind, file, "schedule");
    std::string unit = "step";
    read(c, "unit", unit, file, "schedule");
    if (unit != "step" && unit != "epoch")
      throw ConfigError(at(file, c["unit"]) + ": key 'schedule.unit' must be step or epoch");
    s.schedule_per_epoch = unit == "epoch";
    read(c, "step_size", cs.step_size, file, "schedule");
    read(c, "gamma", cs.gamma, file, "schedule");
    read(c, "min_lr", cs.min_lr, file, "schedule");
    read(c, "warmup_steps", cs.warmup_steps, file, "schedule");
    read(c, "max_lr", cs.max_lr, file, "schedule");
    read(c, "pct_start", cs.pct_start, file, "schedule");
    read(c, "div_factor", cs.div_factor, file, "schedule");
    read(c, "final_div_factor", cs.final_div_factor, file, "schedule");
    read(c, "three_phase", cs.three_phase, file, "schedule");
    try {
      validate(cs);
    } catch (const ConfigError& e) {
      throw ConfigError(at(file, c) + ": section 'schedule': " + e.what());
    }
  }

  if (const YAML::Node t = root["training"]) {
    check_keys(t, {"epochs", "batch_size", "seed", "threads", "device", "early_stopping", "target_accuracy", "freeze",
                   "init_from", "checkpoint_dir", "checkpoint_every", "restore", "save_weights",
                   "evaluate_test", "freeze_first", "unfreeze_after", "unfreeze_every", "transfer_lr_mult",
                   "replace_head"}, file, "training");
    read(t, "epochs", s.epochs, file, "training");
    read(t, "batch_size", s.batch_size, file, "training");
    read(t, "seed", s.seed, file, "training");
    read(t, "threads", s.threads, file, "training");
    read(t, "device", s.device, file, "training");
    read(t, "target_accuracy", s.target_accuracy, file, "training");
    read(t, "init_from", s.init_from, file, "training");
    s.init_from = relative_to(file, s.init_from);
    read(t, "checkpoint_dir", s.checkpoint_dir, file, "training");
    read(t, "checkpoint_every", s.checkpoint_every, file, "training");
    read(t, "restore", s.restore, file, "training");
    s.restore = relative_to(file, s.restore);
    read(t, "save_weights", s.save_weights, file, "training");
    read(t, "evaluate_test", s.evaluate_test, file, "training");
    if (const YAML::Node f = t["freeze"]) {
      if (f.IsSequence())
        for (const auto& x : f) s.freeze.push_back(x.as<std::string>());
      else
        s.freeze.push_back(f.as<std::string>());
    }
    // Transfer learning (TransferSpec).
    read(t, "freeze_first", s.transfer.freeze_first, file, "training");
    read(t, "unfreeze_after", s.transfer.unfreeze_after, file, "training");
    read(t, "unfreeze_every", s.transfer.unfreeze_every, file, "training");
    read(t, "transfer_lr_mult", s.transfer.transfer_lr_mult, file, "training");
    read(t, "replace_head", s.transfer.replace_head, file, "training");
    for (auto [key, v] : {std::pair{"freeze_first", s.transfer.freeze_first},
                          {"unfreeze_after", s.transfer.unfreeze_after}, {"unfreeze_every", s.transfer.unfreeze_every}})
      if (v < 0) throw ConfigError(at(file, t[key]) + ": key 'training." + key + "' must be >= 0");
    if (s.transfer.unfreeze_every > 0 && s.transfer.unfreeze_after == 0)
      throw ConfigError(at(file, t["unfreeze_every"]) +
                        ": key 'training.unfreeze_every' needs 'training.unfreeze_after' (when unfreezing starts)");
    if (!(s.transfer.transfer_lr_mult >= 0.0f))
      throw ConfigError(at(file, t["transfer_lr_mult"]) + ": key 'training.transfer_lr_mult' must be >= 0");
    if (s.epochs < 1) throw ConfigError(at(file, t["epochs"]) + ": key 'training.epochs' must be >= 1");
    if (s.batch_size < 1) throw ConfigError(at(file, t["batch_size"]) + ": key 'training.batch_size' must be >= 1");
    if (s.checkpoint_every < 1)
      throw ConfigError(at(file, t["checkpoint_every"]) + ": key 'training.checkpoint_every' must be >= 1");
    if (const YAML::Node e = t["early_stopping"]) {
      check_keys(e, {"enabled", "monitor", "patience", "min_delta", "mode", "restore_best"}, file,
                 "training.early_stopping");
      EarlyStopping& es = s.early_stopping;
      es.enabled = true;
      const std::string sec = "training.early_stopping";
      read(e, "enabled", es.enabled, file, sec);
      read(e, "monitor", es.monitor, file, sec);
      read(e, "patience", es.patience, file, sec);
      read(e, "min_delta", es.min_delta, file, sec);
      read(e, "mode", es.mode, file, sec);
      read(e, "restore_best", es.restore_best, file, sec);
      if (es.monitor != "val_loss" && es.monitor != "val_accuracy")
        throw ConfigError(at(file, e["monitor"]) + ": key '" + sec + ".monitor' must be val_loss or val_accuracy");
      if (es.mode != "auto" && es.mode != "min" && es.mode != "max")
        throw ConfigError(at(file, e["mode"]) + ": key '" + sec + ".mode' must be auto, min or max");
      if (es.patience < 1 || es.min_delta < 0)
        throw ConfigError(at(file, e) + ": " + sec + ": patience must be >= 1 and min_delta >= 0");
    }
  }
  if (const YAML::Node p = root["pseudo_label"]) {
    check_keys(p, {"enabled", "threshold", "rounds", "max_per_class", "teacher"}, file, "pseudo_label");
    PseudoLabelSpec& ps = s.pseudo_label;
    ps.enabled = true;  // the section's presence turns it on, as with early_stopping
    read(p, "enabled", ps.enabled, file, "pseudo_label");
    read(p, "threshold", ps.threshold, file, "pseudo_label");
    read(p, "rounds", ps.rounds, file, "pseudo_label");
    read(p, "max_per_class", ps.max_per_class, file, "pseudo_label");
    if (ps.max_per_class < 0)
      throw ConfigError(at(file, p["max_per_class"]) + ": key 'pseudo_label.max_per_class' must be >= 0");
    read(p, "teacher", ps.teacher, file, "pseudo_label");
    ps.teacher = relative_to(file, ps.teacher);
    if (!(ps.threshold >= 0.0 && ps.threshold <= 1.0))
      throw ConfigError(at(file, p["threshold"]) + ": key 'pseudo_label.threshold' must be in [0, 1]");
    if (ps.rounds < 1) throw ConfigError(at(file, p["rounds"]) + ": key 'pseudo_label.rounds' must be >= 1");
    if (ps.enabled && s.data.labels_per_class == 0)
      throw ConfigError(at(file, p) + ": pseudo_label needs unlabeled samples: set data.labels_per_class (the "
                        "training samples it leaves out are the unlabeled set)");
  }
  if (const YAML::Node a = root["adversarial"]) s.adversarial = parse_adversarial(a, file);
  if (const YAML::Node r = root["robustness"]) s.robustness = parse_robustness(r, file);
  return s;
}

TrainSpec load_train_spec(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(path + ": cannot open the training file");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return parse_train_spec(root, path);
}

// ---------------------------------------------------------------- data

TrainData load_train_data(const TrainSpec& spec) {
  const DataSpec& d = spec.data;
  TrainData out;
  Dataset full;
  const bool images = d.dataset != "csv";
  if (d.dataset == "fashion_mnist" || d.dataset == "mnist") {
    full = load_fashion_mnist(d.dir, true);
    if (spec.evaluate_test) out.test = load_fashion_mnist(d.dir, false);
  } else if (d.dataset == "idx") {
    full = load_idx(d.train_images, d.train_labels);
    if (spec.evaluate_test && !d.test_images.empty()) out.test = load_idx(d.test_images, d.test_labels);
  } else {
    full = load_csv(d.train_path, d.label_column);
    if (spec.evaluate_test && !d.test_path.empty()) out.test = load_csv(d.test_path, d.label_column);
  }
  if (!d.classes.empty()) {
    full = select_classes(full, d.classes);
    if (out.test.n > 0) out.test = select_classes(out.test, d.classes);
  }
  if (d.subset > 0) full = subset(full, d.subset, mix_seed(spec.seed, 0x5355u));
  if (d.labels_per_class > 0) {
    auto parts = take_per_class(full, d.labels_per_class, mix_seed(spec.seed, 0x4c50u));
    full = std::move(parts.first);
    out.unlabeled = std::move(parts.second);
  }
  if (d.test_subset > 0 && out.test.n > 0) out.test = subset(out.test, d.test_subset, mix_seed(spec.seed, 0x5453u));
  if (d.validation_fraction > 0.0) {
    auto parts = split(full, d.validation_fraction, mix_seed(spec.seed, 0x5650u), true);
    out.train = std::move(parts.first);
    out.validation = std::move(parts.second);
  } else {
    out.train = std::move(full);
  }
  if (out.test.n > 0) out.test.num_classes = std::max(out.test.num_classes, out.train.num_classes);
  if (d.normalize) {
    const Normalizer norm = Normalizer::fit(out.train, images ? NormalizeMode::kPerChannel : NormalizeMode::kPerFeature);
    norm.apply(out.train);
    if (out.validation.n > 0) norm.apply(out.validation);
    if (out.test.n > 0) norm.apply(out.test);
    if (out.unlabeled.n > 0) norm.apply(out.unlabeled);
    out.domain = images ? InputDomain::pixels(norm) : InputDomain::unbounded();
    if (!images) {
      out.domain.mean = norm.mean;
      out.domain.stddev = norm.stddev;
    }
  } else if (!images) {
    out.domain = InputDomain::unbounded();
  }
  return out;
}

std::string data_key(const TrainSpec& spec) {
  const DataSpec& d = spec.data;
  std::ostringstream key;
  key << d.dataset << '|' << d.dir << '|' << d.train_images << '|' << d.train_labels << '|' << d.test_images << '|'
      << d.test_labels << '|' << d.train_path << '|' << d.test_path << '|' << d.label_column << '|'
      << d.validation_fraction << '|' << d.subset << '|' << d.test_subset << '|' << d.normalize << '|'
      << d.labels_per_class << '|' << spec.seed << '|' << spec.evaluate_test << "|classes";
  for (int c : d.classes) key << ',' << c;
  return key.str();
}

// ---------------------------------------------------------------- loop

TrainResult train(const TrainSpec& spec, const TrainCallbacks& callbacks) {
  const TrainData data = load_train_data(spec);
  return train(spec, data, callbacks);
}

TrainResult train(const TrainSpec& spec, const TrainData& data, const TrainCallbacks& callbacks) {
  if (spec.pseudo_label.enabled) return train_with_pseudo_labels(spec, data, callbacks);
  const auto start = Clock::now();
  if (spec.epochs < 1 || spec.batch_size < 1) throw ConfigError("epochs and batch_size must be >= 1");
  if (data.train.n == 0) throw DataError("the training set is empty");
  const Shape in = spec.model.input_shape();
  if (in.size() != data.train.sample_size())
    throw ConfigError(spec.file + ": the model input " + std::to_string(in.c) + "x" + std::to_string(in.h) + "x" +
                      std::to_string(in.w) + " does not match the data's samples " + std::to_string(data.train.c) +
                      "x" + std::to_string(data.train.h) + "x" + std::to_string(data.train.w));
  const int classes = static_cast<int>(spec.model.output_shape().size());
  if (data.train.num_classes > classes)
    throw ConfigError(spec.file + ": the data has " + std::to_string(data.train.num_classes) +
                      " classes but the model only " + std::to_string(classes) + " outputs");

  auto backend = make_backend(spec.device, spec.threads);
  Model model(spec.model, *backend, spec.seed);
  TransferReport transfer;
  if (!spec.init_from.empty()) {
    // A checkpoint folder (or a checkpoint_dir with `latest`) stands for its model.safetensors,
    // so a run can start from another run's weights (PBT exploit, fine-tuning). Tensors load
    // when name and shape match; the report says what was skipped and why.
    transfer = load_matching_weights(model, spec.init_from, spec.transfer.replace_head);
    transfer.lr_mult = spec.transfer.transfer_lr_mult;
    if (spec.transfer.transfer_lr_mult != 1.0f) set_lr_mult(model, transfer.matched, spec.transfer.transfer_lr_mult);
  }
  // Freezing is a function of the epoch (gradual unfreezing), applied at the start of each one.
  const FreezePlan freeze_plan(model, spec.freeze, spec.transfer);
  transfer.frozen = freeze_plan.frozen_at(0);
  freeze_plan.apply(model, 0);
  Loss loss(spec.loss, *backend, classes);
  auto optimizer = make_optimizer(spec.optimizer);

  const int bs = spec.batch_size;
  model.plan(bs);
  loss.plan(bs);
  const int64_t ss = data.train.sample_size();
  std::vector<float> xb(static_cast<size_t>(bs) * ss);
  std::vector<int32_t> yb(bs);
  float* staging = backend->is_host() ? nullptr : backend->alloc(static_cast<size_t>(bs) * ss);
  struct StagingGuard {
    Backend* b;
    float* p;
    ~StagingGuard() { if (p) b->free(p); }
  } guard{backend.get(), staging};

  BatchLoader loader(data.train, bs, true, mix_seed(spec.seed, 0x4c4fu), spec.data.augment);
  const int64_t batches = loader.batches_per_epoch();
  const int64_t total_steps = batches * spec.epochs;

  TrainResult result;
  result.param_count = model.param_count();
  result.flops_per_sample = model.flops_per_sample();
  TrainerState st;
  st.seed = spec.seed;
  std::map<std::string, std::vector<float>> best_weights;
  const bool minimize = minimise(spec.early_stopping);
  if (!spec.restore.empty()) {
    st = read_checkpoint(spec.restore, model, *optimizer, best_weights);
    if (st.seed != spec.seed)
      throw ConfigError(spec.restore + ": checkpoint was written by a run with seed " + std::to_string(st.seed) +
                        ", this run has seed " + std::to_string(spec.seed));
    loader.restore(st.loader);
    freeze_plan.apply(model, st.epoch);  // restoring weights keeps grads zero
  }
  result.history = st.history;
  const double wall_before = st.wall_seconds;
  auto wall = [&] { return wall_before + std::chrono::duration<double>(Clock::now() - start).count(); };

  bool stop = false;
  for (int epoch = st.epoch; epoch < spec.epochs && !stop; ++epoch) {
    const auto t0 = Clock::now();
    if (loader.epoch() != epoch || loader.state().position == 0) loader.start_epoch(epoch);
    freeze_plan.apply(model, epoch);
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0, b = 0;
    float lr = spec.lr;
    for (;;) {
      const int64_t n = loader.next(xb.data(), yb.data());
      if (n == 0) break;
      if (spec.adversarial.enabled)  // adversarial training: attack the batch with the current weights
        adversarial_batch(spec.adversarial, model, loss, data.domain, xb.data(), yb.data(), static_cast<int>(n),
                          epoch + static_cast<double>(b) / static_cast<double>(batches), st.steps);
      const float* x = xb.data();
      if (staging) {
        backend->upload(staging, xb.data(), static_cast<size_t>(n) * ss);
        x = staging;
      }
      const float* out = model.forward(x, static_cast<int>(n), true);
      const BatchLoss bl = loss.compute(out, yb.data(), static_cast<int>(n), true);
      if (!std::isfinite(bl.loss_sum))
        throw TrainError("training loss became " + std::string(std::isnan(bl.loss_sum) ? "NaN" : "infinite") +
                         " at epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(b + 1) + " (step " +
                         std::to_string(st.steps + 1) + "); lower the learning rate or check the data");
      model.backward(loss.grad());
      lr = spec.schedule_per_epoch ? lr_at(spec.schedule, spec.lr, epoch, spec.epochs)
                                   : lr_at(spec.schedule, spec.lr, st.steps, total_steps);
      optimizer->step(model.param_refs(), lr);
      ++st.steps;
      ++b;
      loss_sum += bl.loss_sum;
      correct += bl.correct;
      seen += n;
      if (callbacks.on_batch) callbacks.on_batch(b, batches, loss_sum / static_cast<double>(seen));
    }
    const double train_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.steps = st.steps;
    m.lr = lr;
    m.train_loss = seen ? loss_sum / static_cast<double>(seen) : std::nan("");
    m.train_accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : std::nan("");
    const EvalResult v = evaluate(model, loss, data.validation, bs, staging);
    m.val_loss = v.loss;
    m.val_accuracy = v.accuracy;
    m.samples_per_second = train_seconds > 0 ? static_cast<double>(seen) / train_seconds : 0.0;
    m.epoch_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    m.wall_seconds = wall();
    result.history.push_back(m);
    if (spec.target_accuracy > 0 && st.time_to_target < 0 && m.val_accuracy >= spec.target_accuracy)
      st.time_to_target = m.wall_seconds;

    // Early stopping bookkeeping (also run when disabled, to report the best epoch). Without a
    // validation set the training loss stands in.
    const bool have_val = data.validation.n > 0;
    double value = spec.early_stopping.monitor == "val_accuracy" ? m.val_accuracy : m.val_loss;
    if (!have_val) value = spec.early_stopping.monitor == "val_accuracy" ? m.train_accuracy : m.train_loss;
    const double delta = spec.early_stopping.min_delta;
    const bool improved = st.best_epoch == 0 || (minimize ? value < st.best_value - delta : value > st.best_value + delta);
    if (improved) {
      st.best_value = value;
      st.best_epoch = m.epoch;
      st.bad_epochs = 0;
      if (spec.early_stopping.enabled && spec.early_stopping.restore_best) best_weights = model.state_dict();
    } else {
      ++st.bad_epochs;
    }
    if (spec.early_stopping.enabled && st.bad_epochs >= spec.early_stopping.patience) {
      result.stopped_early = true;
      stop = true;
    }
    if (callbacks.on_epoch && !callbacks.on_epoch(m)) {
      result.stopped_by_callback = true;
      stop = true;
    }
    st.epoch = epoch + 1;
    st.loader = loader.state();
    st.dropout_counter = model.dropout_counter();
    st.history = result.history;
    st.wall_seconds = m.wall_seconds;
    if (!spec.checkpoint_dir.empty() && (st.epoch % spec.checkpoint_every == 0 || stop || st.epoch == spec.epochs))
      result.last_checkpoint = write_checkpoint(spec.checkpoint_dir, model, *optimizer, st, best_weights);
  }

  if (spec.early_stopping.enabled && spec.early_stopping.restore_best && !best_weights.empty() &&
      st.best_epoch != st.epoch) {
    for (const auto& [name, v] : best_weights) model.set_tensor(name, v);
  }
  if (!result.history.empty()) {
    result.final_metrics = result.history.back();
    result.best = result.history[std::max(0, st.best_epoch - 1)];
  }
  result.time_to_target = st.time_to_target;
  if (spec.evaluate_test && data.test.n > 0) {
    const EvalResult t = evaluate(model, loss, data.test, bs, staging);
    result.test_loss = t.loss;
    result.test_accuracy = t.accuracy;
  }
  if (spec.robustness.enabled) {
    // Attacks use plain cross-entropy whatever the training loss (the standard definition).
    const bool on_test = spec.robustness.set == "test";
    const Dataset& set = on_test ? data.test : data.validation;
    if (set.n == 0)
      throw ConfigError(spec.file + ": robustness.set is " + spec.robustness.set + " but that set is empty" +
                        (on_test ? " (training.evaluate_test false, or no test data)" : " (data.validation 0)"));
    Loss attack_loss(LossSpec{}, *backend, classes);
    ModelTarget target(model, attack_loss);
    result.robustness = evaluate_robustness(spec.robustness, target, data.domain, set, bs);
    result.robustness->set = spec.robustness.set;
  }
  if (!spec.save_weights.empty()) save_weights(model, spec.save_weights);
  transfer.unfrozen = freeze_plan.events(st.epoch);
  result.transfer = std::move(transfer);
  if (callbacks.on_final_model) callbacks.on_final_model(model);
  return result;
}

}  // namespace kestrel::trainer
