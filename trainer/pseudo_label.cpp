// Pseudo-labeling: confident teacher predictions on unlabeled samples (label_confident) and the
// teacher / student rounds run through train() (train_with_pseudo_labels).
#include "trainer/pseudo_label.hpp"

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/error.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/model.hpp"
#include "trainer/train.hpp"

namespace kestrel::trainer {
namespace fs = std::filesystem;

PseudoLabels label_confident(Model& model, const Dataset& unlabeled, double threshold, int batch) {
  if (!(threshold >= 0.0 && threshold <= 1.0))
    throw ConfigError("pseudo_label: threshold must be in [0, 1], got " + std::to_string(threshold));
  if (batch < 1) throw ConfigError("pseudo_label: batch must be >= 1");
  const Graph& g = model.graph();
  const int64_t ss = unlabeled.sample_size();
  if (unlabeled.n > 0 && ss != g.input_shape().size())
    throw ConfigError("pseudo_label: unlabeled samples have " + std::to_string(ss) + " values, the model takes " +
                      std::to_string(g.input_shape().size()));
  const int k = static_cast<int>(g.output_shape().size());
  PseudoLabels out;
  out.data.c = unlabeled.c;
  out.data.h = unlabeled.h;
  out.data.w = unlabeled.w;
  out.data.num_classes = std::max(unlabeled.num_classes, k);
  out.data.class_names = unlabeled.class_names;
  if (unlabeled.n == 0) return out;

  Backend& be = model.backend();
  model.plan(batch);
  float* staging = be.is_host() ? nullptr : be.alloc(static_cast<size_t>(batch) * ss);
  struct Guard {
    Backend& b;
    float* p;
    ~Guard() { if (p) b.free(p); }
  } guard{be, staging};
  std::vector<float> logits(static_cast<size_t>(batch) * k);
  for (int64_t start = 0; start < unlabeled.n; start += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, unlabeled.n - start));
    const float* x = unlabeled.x.data() + start * ss;
    if (staging) {
      be.upload(staging, x, static_cast<size_t>(n) * ss);
      x = staging;
    }
    const float* o = model.forward(x, n, false);
    be.download(logits.data(), o, static_cast<size_t>(n) * k);
    for (int i = 0; i < n; ++i) {
      const float* l = logits.data() + static_cast<size_t>(i) * k;
      int best = 0;
      for (int c = 1; c < k; ++c)
        if (l[c] > l[best]) best = c;
      // The largest probability is 1 / sum_c exp(l_c - l_max), computed in double.
      double sum = 0.0;
      for (int c = 0; c < k; ++c) sum += std::exp(static_cast<double>(l[c]) - static_cast<double>(l[best]));
      const double p = 1.0 / sum;
      if (!(p >= threshold)) continue;
      const int64_t idx = start + i;
      out.data.x.insert(out.data.x.end(), unlabeled.x.begin() + idx * ss, unlabeled.x.begin() + (idx + 1) * ss);
      out.data.y.push_back(best);
      out.index.push_back(idx);
      out.confidence.push_back(static_cast<float>(p));
    }
  }
  out.data.n = static_cast<int64_t>(out.index.size());
  return out;
}

PseudoLabels cap_per_class(const PseudoLabels& labels, int64_t max_per_class) {
  if (max_per_class <= 0) return labels;
  std::map<int32_t, std::vector<int64_t>> by_class;  // positions in labels
  for (int64_t i = 0; i < labels.data.n; ++i) by_class[labels.data.y[i]].push_back(i);
  std::vector<char> keep(static_cast<size_t>(labels.data.n), 0);
  for (auto& [cls, members] : by_class) {
    std::stable_sort(members.begin(), members.end(),
                     [&](int64_t a, int64_t b) { return labels.confidence[a] > labels.confidence[b]; });
    const auto k = static_cast<size_t>(std::min<int64_t>(max_per_class, static_cast<int64_t>(members.size())));
    for (size_t j = 0; j < k; ++j) keep[members[j]] = 1;
  }
  PseudoLabels out;
  out.data = labels.data;
  out.data.x.clear();
  out.data.y.clear();
  const int64_t ss = labels.data.sample_size();
  for (int64_t i = 0; i < labels.data.n; ++i) {
    if (!keep[i]) continue;
    out.data.x.insert(out.data.x.end(), labels.data.x.begin() + i * ss, labels.data.x.begin() + (i + 1) * ss);
    out.data.y.push_back(labels.data.y[i]);
    out.index.push_back(labels.index[i]);
    out.confidence.push_back(labels.confidence[i]);
  }
  out.data.n = static_cast<int64_t>(out.index.size());
  return out;
}

nlohmann::json PseudoLabelReport::to_json() const {
  auto num = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  nlohmann::json j;
  j["threshold"] = threshold;
  j["teacher"] = teacher;
  j["teacher_test_accuracy"] = num(teacher_test_accuracy);
  j["rounds"] = nlohmann::json::array();
  for (const auto& r : rounds)
    j["rounds"].push_back({{"round", r.round},
                           {"unlabeled", r.unlabeled},
                           {"accepted", r.accepted},
                           {"mean_confidence", num(r.mean_confidence)},
                           {"pseudo_accuracy", num(r.pseudo_accuracy)},
                           {"per_class", r.per_class},
                           {"student_val_accuracy", num(r.student_val_accuracy)},
                           {"student_test_accuracy", num(r.student_test_accuracy)}});
  return j;
}

std::string PseudoLabelReport::summary() const {
  std::ostringstream o;
  auto pct = [](double x) {
    if (!std::isfinite(x)) return std::string("-");
    char b[32];
    std::snprintf(b, sizeof b, "%.2f%%", 100.0 * x);
    return std::string(b);
  };
  o << "pseudo-labeling: threshold " << threshold << ", teacher " << teacher;
  if (std::isfinite(teacher_test_accuracy)) o << " (test acc " << pct(teacher_test_accuracy) << ")";
  o << "\n";
  for (const auto& r : rounds)
    o << "  round " << r.round << ": " << r.accepted << " of " << r.unlabeled << " unlabeled accepted (mean confidence "
      << pct(r.mean_confidence) << ", correct " << pct(r.pseudo_accuracy) << "); student val acc "
      << pct(r.student_val_accuracy) << ", test acc " << pct(r.student_test_accuracy) << "\n";
  return o.str();
}

TrainResult train_with_pseudo_labels(const TrainSpec& spec, const TrainData& data, const TrainCallbacks& callbacks) {
  const PseudoLabelSpec& ps = spec.pseudo_label;
  if (!(ps.threshold >= 0.0 && ps.threshold <= 1.0))
    throw ConfigError(spec.file + ": pseudo_label.threshold must be in [0, 1]");
  if (ps.rounds < 1) throw ConfigError(spec.file + ": pseudo_label.rounds must be >= 1");
  if (ps.max_per_class < 0) throw ConfigError(spec.file + ": pseudo_label.max_per_class must be >= 0");
  if (!spec.restore.empty())
    throw ConfigError(spec.file + ": pseudo-labeling trains several runs and cannot resume from 'restore'");
  if (data.unlabeled.n == 0)
    throw ConfigError(spec.file + ": pseudo_label needs unlabeled samples (set data.labels_per_class so that the "
                      "training images left out become the unlabeled set)");

  TrainSpec base = spec;
  base.pseudo_label.enabled = false;
  base.save_weights.clear();

  PseudoLabelReport report;
  report.threshold = ps.threshold;
  std::vector<EpochMetrics> history;
  int epoch_offset = 0;
  double wall_offset = 0.0;
  PseudoLabels labels;

  // One run of train(): its epochs continue the numbering of the runs before it; at the end the
  // model labels the unlabeled set (teacher and every student but the last) or goes to the caller.
  auto run = [&](TrainSpec s, const TrainData& d, bool last, const std::string& name) {
    if (!spec.checkpoint_dir.empty()) s.checkpoint_dir = (fs::path(spec.checkpoint_dir) / name).string();
    if (last) s.save_weights = spec.save_weights;
    TrainCallbacks cb;
    cb.on_batch = callbacks.on_batch;
    const int off = epoch_offset;
    const double woff = wall_offset;
    if (callbacks.on_epoch)
      cb.on_epoch = [&callbacks, off, woff](const EpochMetrics& m) {
        EpochMetrics shifted = m;
        shifted.epoch += off;
        shifted.wall_seconds += woff;
        return callbacks.on_epoch(shifted);
      };
    cb.on_final_model = [&](Model& model) {
      if (!last)
        labels = cap_per_class(label_confident(model, data.unlabeled, ps.threshold, spec.batch_size), ps.max_per_class);
      if (last && callbacks.on_final_model) callbacks.on_final_model(model);
    };
    TrainResult r = train(s, d, cb);
    for (auto* m : {&r.final_metrics, &r.best}) {
      m->epoch += off;
      m->wall_seconds += woff;
    }
    for (auto& m : r.history) {
      m.epoch += off;
      m.wall_seconds += woff;
      history.push_back(m);
    }
    epoch_offset = history.empty() ? off : history.back().epoch;
    wall_offset = history.empty() ? woff : history.back().wall_seconds;
    return r;
  };
  auto finish = [&](TrainResult r) {
    r.history = history;
    r.pseudo_label = report;
    return r;
  };

  if (ps.teacher.empty()) {
    report.teacher = "trained";
    TrainResult t = run(base, data, false, "teacher");
    report.teacher_test_accuracy = t.test_accuracy;
    if (t.stopped_by_callback) return finish(t);
  } else {
    report.teacher = resolve_weights_file(ps.teacher);
    auto backend = make_backend(spec.device, spec.threads);
    Model teacher(spec.model, *backend, spec.seed);
    load_weights(teacher, report.teacher, true);
    labels = cap_per_class(label_confident(teacher, data.unlabeled, ps.threshold, spec.batch_size), ps.max_per_class);
  }

  TrainResult last;
  for (int round = 1; round <= ps.rounds; ++round) {
    PseudoLabelRound pr;
    pr.round = round;
    pr.unlabeled = data.unlabeled.n;
    pr.accepted = labels.data.n;
    pr.per_class.assign(static_cast<size_t>(std::max(labels.data.num_classes, 1)), 0);
    double conf = 0.0;
    int64_t right = 0;
    const bool known = static_cast<int64_t>(data.unlabeled.y.size()) == data.unlabeled.n;
    for (int64_t i = 0; i < labels.data.n; ++i) {
      ++pr.per_class[static_cast<size_t>(labels.data.y[i])];
      conf += labels.confidence[i];
      if (known && data.unlabeled.y[labels.index[i]] == labels.data.y[i]) ++right;
    }
    if (labels.data.n > 0) {
      pr.mean_confidence = conf / static_cast<double>(labels.data.n);
      if (known) pr.pseudo_accuracy = static_cast<double>(right) / static_cast<double>(labels.data.n);
    }
    TrainData d;
    d.train = concat(data.train, labels.data);
    d.validation = data.validation;
    d.test = data.test;
    const bool final_round = round == ps.rounds;
    last = run(base, d, final_round, "round-" + std::to_string(round));
    pr.student_val_accuracy = last.final_metrics.val_accuracy;
    pr.student_test_accuracy = last.test_accuracy;
    report.rounds.push_back(std::move(pr));
    if (last.stopped_by_callback) break;
  }
  return finish(last);
}

}  // namespace kestrel::trainer
