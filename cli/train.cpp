// `kestrel train MODEL.yaml`: one training run of the built-in trainer (docs/model-file.md), with a line per epoch,
// the final metrics, and Ctrl-C ending the run after the current epoch.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "engine/trainer_evaluator.hpp"
#include "trainer/train.hpp"

namespace kestrel::cli {
namespace {

nlohmann::json num_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

nlohmann::json epoch_json(const trainer::EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"steps", m.steps},
          {"lr", m.lr},
          {"train_loss", num_or_null(m.train_loss)},
          {"train_accuracy", num_or_null(m.train_accuracy)},
          {"val_loss", num_or_null(m.val_loss)},
          {"val_accuracy", num_or_null(m.val_accuracy)},
          {"samples_per_second", m.samples_per_second},
          {"epoch_seconds", m.epoch_seconds},
          {"wall_seconds", m.wall_seconds}};
}

std::string pct(double x) {
  if (!std::isfinite(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * x);
  return buf;
}

// The robustness report (robustness: section): accuracy per attack and epsilon, clean per-class
// accuracy, and the sanity checks. The confusion matrices are in the --json output.
void print_robustness(const trainer::RobustnessReport& rep) {
  std::cout << "robustness on the " << rep.set << " set (" << rep.n << " samples): clean acc "
            << pct(rep.clean_accuracy) << "\n";
  for (const auto& res : rep.results) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-7s %-11s eps %-6g acc %-8s flipped %-6lld %s\n", res.attack.c_str(),
                  res.attack == "fgsm" ? (res.random_start ? "random start" : "")
                                       : ((std::to_string(res.steps) + " steps" + (res.random_start ? " rs" : "")).c_str()),
                  res.epsilon, pct(res.accuracy).c_str(), static_cast<long long>(res.flipped),
                  short_duration(res.seconds).c_str());
    std::cout << line;
  }
  std::cout << "  clean per class:";
  for (double v : rep.per_class_accuracy) std::cout << " " << pct(v);
  std::cout << "\n";
  if (rep.flags.empty()) std::cout << "  sanity checks passed (noise margin " << pct(rep.noise) << ")\n";
  for (const auto& f : rep.flags) std::cout << "  WARNING " << f.check << ": " << f.message << "\n";
}

void on_interrupt(int) { g_stop_requested.store(true); }

}  // namespace

int train_model(const TrainArgs& a) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(a.file);
  } catch (const YAML::BadFile&) {
    throw ConfigError(a.file + ": cannot open the training file");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(a.file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  // training.init_from may name a study's trial ({storage, study, trial: best | N}) instead of a weights file.
  nlohmann::json from = engine::resolve_init_from_study(root);
  if (!from.is_null()) std::cout << "init_from: trial " << from["trial"] << " of study " << from["study"] << " ("
                                 << from["weights"].get<std::string>() << ")\n";
  trainer::TrainSpec spec = trainer::parse_train_spec(root, a.file);
  if (a.epochs) spec.epochs = *a.epochs;
  if (a.threads) spec.threads = *a.threads;
  if (a.seed) spec.seed = *a.seed;

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  g_stop_requested.store(false);

  std::cout << "kestrel: training " << a.file << " (" << spec.model.param_count() << " parameters, "
            << spec.model.flops_per_sample() << " FLOPs per sample, " << spec.epochs << " epochs, batch "
            << spec.batch_size << ")\n";
  std::cout.flush();
  trainer::TrainCallbacks cb;
  cb.on_epoch = [&](const trainer::EpochMetrics& m) {
    if (!a.json) {
      std::cout << "epoch " << m.epoch << "/" << spec.epochs << "  train loss " << short_number(m.train_loss) << " acc "
                << pct(m.train_accuracy) << "  val loss " << short_number(m.val_loss) << " acc " << pct(m.val_accuracy)
                << "  lr " << short_number(m.lr) << "  " << short_number(m.samples_per_second) << " samples/s  "
                << short_duration(m.epoch_seconds) << "\n";
      std::cout.flush();
    }
    return !g_stop_requested.load();
  };
  trainer::TrainResult r = trainer::train(spec, cb);

  if (a.json) {
    nlohmann::json j;
    j["file"] = a.file;
    j["param_count"] = r.param_count;
    j["flops_per_sample"] = r.flops_per_sample;
    j["history"] = nlohmann::json::array();
    for (const auto& m : r.history) j["history"].push_back(epoch_json(m));
    j["final"] = epoch_json(r.final_metrics);
    j["best"] = epoch_json(r.best);
    j["test_loss"] = num_or_null(r.test_loss);
    j["test_accuracy"] = num_or_null(r.test_accuracy);
    j["time_to_target_s"] = r.time_to_target >= 0 ? nlohmann::json(r.time_to_target) : nlohmann::json(nullptr);
    j["stopped_early"] = r.stopped_early;
    j["interrupted"] = r.stopped_by_callback;
    j["last_checkpoint"] = r.last_checkpoint;
    // Transfer learning: what init_from loaded and skipped, freezing; pseudo-labeling rounds.
    if (!r.transfer.empty()) j["transfer"] = r.transfer.to_json();
    if (!r.pseudo_label.empty()) j["pseudo_label"] = r.pseudo_label.to_json();
    if (r.robustness) j["robustness"] = nlohmann::json::parse(r.robustness->to_json());
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << "best epoch " << r.best.epoch << ": val loss " << short_number(r.best.val_loss) << " acc "
              << pct(r.best.val_accuracy) << "\n";
    if (std::isfinite(r.test_accuracy))
      std::cout << "test: loss " << short_number(r.test_loss) << " acc " << pct(r.test_accuracy) << "\n";
    if (spec.target_accuracy > 0)
      std::cout << "time to " << pct(spec.target_accuracy) << " validation accuracy: "
                << (r.time_to_target >= 0 ? short_duration(r.time_to_target) : "not reached") << "\n";
    if (r.stopped_early) std::cout << "stopped early (no improvement of " << spec.early_stopping.monitor << ")\n";
    if (r.robustness) print_robustness(*r.robustness);
    if (!r.transfer.empty()) std::cout << r.transfer.summary();
    if (!r.pseudo_label.empty()) std::cout << r.pseudo_label.summary();
    if (!r.last_checkpoint.empty()) std::cout << "last checkpoint: " << r.last_checkpoint << "\n";
    std::cout << "wall time " << short_duration(r.final_metrics.wall_seconds) << "\n";
  }
  if (r.stopped_by_callback) {
    std::cerr << "kestrel: interrupted after epoch " << r.final_metrics.epoch << "\n";
    return kExitInterrupted;
  }
  return kExitOk;
}

}  // namespace kestrel::cli
