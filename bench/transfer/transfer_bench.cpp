// Transfer-learning benchmark on Fashion-MNIST: pretrain on classes 0-4, then learn classes 5-9 from
// 100 and 1,000 labels per class with and without the pretrained weights; pseudo-labeling vs labeled-only.
//
// Every run starts from the training files in configs/ (transfer/pretrain.yaml, transfer/finetune.yaml,
// transfer/pseudo.yaml), so the benchmark measures what a user runs; only the seed, the labels per class,
// the file paths and the variant's transfer settings are overridden here. Test accuracy is on the 5,000
// test images of classes 5-9. Prints one JSON line per run and a summary table (mean and each seed).
//
//   transfer_bench [--seeds 1,2,3] [--labels 100,1000] [--epochs N] [--epochs-large N] [--pretrain-epochs N]
//                  [--pseudo-rounds N] [--pseudo-max N] [--pseudo-threshold X] [--model configs/models/X.yaml] [--threads N] [--no-pseudo]
//                  [--augment PAD] [--out results.jsonl]
// --epochs: fine-tuning epochs (default: the file's); --epochs-large: epochs for 1,000 or more labels per
// class (default: as --epochs); --model: another model for every run (5 outputs); --augment: random crops after
// zero padding by PAD pixels (data.augment.pad_crop) in every run on classes 5-9, labeled-only and pseudo-labeling
// alike (with a dropout model this is the "noisy student" recipe of Xie et al. 2020).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trainer/train.hpp"

namespace fs = std::filesystem;
using namespace kestrel::trainer;

namespace {

std::vector<int> int_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(std::stoi(x));
  return out;
}

std::string cfg(const std::string& name) { return std::string(KESTREL_SOURCE_DIR) + "/configs/" + name; }

struct Row {
  std::string variant;
  int labels = 0;
  int seed = 0;
  double test_accuracy = 0.0;
  double seconds = 0.0;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> seeds = {1, 2, 3}, labels = {100, 1000};  // --labels 0: no transfer runs
  int epochs = -1, epochs_large = -1, pretrain_epochs = -1, pseudo_rounds = -1, threads = 2, augment = -1;
  std::string model_file;
  int64_t pseudo_max = -1;
  double pseudo_threshold = -1.0;
  bool pseudo = true;
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seeds") seeds = int_list(next());
    else if (a == "--labels") labels = int_list(next());
    else if (a == "--epochs") epochs = std::stoi(next());
    else if (a == "--epochs-large") epochs_large = std::stoi(next());
    else if (a == "--pretrain-epochs") pretrain_epochs = std::stoi(next());
    else if (a == "--pseudo-rounds") pseudo_rounds = std::stoi(next());
    else if (a == "--model") model_file = next();
    else if (a == "--pseudo-max") pseudo_max = std::stoll(next());
    else if (a == "--pseudo-threshold") pseudo_threshold = std::stod(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--no-pseudo") pseudo = false;
    else if (a == "--augment") augment = std::stoi(next());
    else if (a == "--out") out_path = next();
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  const fs::path work = fs::temp_directory_path() / ("kestrel_transfer_bench_" + std::to_string(::getpid()));
  fs::create_directories(work);
  std::ofstream out_file;
  if (!out_path.empty()) out_file.open(out_path);

  std::vector<Row> rows;
  auto record = [&](const std::string& variant, int n, int seed, const TrainSpec& spec, const TrainResult& r) {
    Row row{variant, n, seed, r.test_accuracy, r.final_metrics.wall_seconds};
    rows.push_back(row);
    nlohmann::json j = {{"variant", variant},       {"labels_per_class", n}, {"seed", seed},
                        {"test_accuracy", r.test_accuracy}, {"epochs", static_cast<int>(r.history.size())},
                        {"seconds", row.seconds},
                        {"lr", spec.lr}, {"batch_size", spec.batch_size}};
    if (!r.transfer.empty()) j["transfer"] = r.transfer.to_json();
    if (!r.pseudo_label.empty()) j["pseudo_label"] = r.pseudo_label.to_json();
    std::cout << j.dump() << std::endl;
    if (out_file) out_file << j.dump() << std::endl;
  };

  for (int seed : seeds) {
    TrainSpec pre = load_train_spec(cfg("transfer/pretrain.yaml"));
    if (!model_file.empty()) pre.model = load_model_file(model_file);
    pre.seed = static_cast<uint64_t>(seed);
    pre.threads = threads;
    if (pretrain_epochs > 0) pre.epochs = pretrain_epochs;
    pre.save_weights = (work / ("pretrain-" + std::to_string(seed) + ".safetensors")).string();
    const TrainResult pr = train(pre);
    record("pretrain classes 0-4", 0, seed, pre, pr);

    for (int n : labels) {
      if (n <= 0) continue;
      TrainSpec base = load_train_spec(cfg("transfer/finetune.yaml"));
      base.seed = static_cast<uint64_t>(seed);
      base.threads = threads;
      base.data.labels_per_class = n;
      if (!model_file.empty()) base.model = load_model_file(model_file);
      if (epochs > 0) base.epochs = epochs;
      if (n >= 1000 && epochs_large > 0) base.epochs = epochs_large;
      if (augment >= 0) base.data.augment.pad_crop = augment;
      // One data load per (seed, labels) for every variant: load_train_data depends on nothing else.
      const TrainData data = load_train_data(base);

      TrainSpec scratch = base;
      scratch.init_from.clear();
      scratch.transfer = TransferSpec{};
      record("scratch", n, seed, scratch, train(scratch, data));

      struct Variant {
        const char* name;
        float lr_mult;
        int freeze_first;
      };
      for (const Variant v : {Variant{"transfer (lr_mult 1)", 1.0f, 0}, Variant{"transfer (lr_mult 0.1)", 0.1f, 0},
                              Variant{"transfer (body frozen)", 1.0f, 2}}) {
        TrainSpec t = base;
        t.init_from = pre.save_weights;
        t.transfer.replace_head = true;
        t.transfer.transfer_lr_mult = v.lr_mult;
        t.transfer.freeze_first = v.freeze_first;
        t.transfer.unfreeze_after = 0;
        record(v.name, n, seed, t, train(t, data));
      }
    }

    if (pseudo) {
      TrainSpec ps = load_train_spec(cfg("transfer/pseudo.yaml"));
      ps.seed = static_cast<uint64_t>(seed);
      ps.threads = threads;
      if (!model_file.empty()) ps.model = load_model_file(model_file);
      if (epochs > 0) ps.epochs = epochs;
      if (pseudo_rounds > 0) ps.pseudo_label.rounds = pseudo_rounds;
      if (pseudo_max >= 0) ps.pseudo_label.max_per_class = pseudo_max;
      if (pseudo_threshold >= 0) ps.pseudo_label.threshold = pseudo_threshold;
      if (augment >= 0) ps.data.augment.pad_crop = augment;
      const TrainData data = load_train_data(ps);
      TrainSpec only = ps;
      only.pseudo_label.enabled = false;
      record("labeled only", static_cast<int>(ps.data.labels_per_class), seed, only, train(only, data));
      record("pseudo-label", static_cast<int>(ps.data.labels_per_class), seed, ps, train(ps, data));
    }
  }
  fs::remove_all(work);

  // Summary: mean and each seed per (variant, labels).
  std::map<std::pair<int, std::string>, std::vector<const Row*>> groups;
  std::vector<std::pair<int, std::string>> order;
  for (const auto& r : rows) {
    auto key = std::pair{r.labels, r.variant};
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&r);
  }
  std::printf("\n| labels/class | variant | test acc mean | per seed | seconds (median) |\n|---|---|---|---|---|\n");
  for (const auto& key : order) {
    const auto& g = groups[key];
    double sum = 0;
    std::string each;
    std::vector<double> secs;
    for (const Row* r : g) {
      sum += r->test_accuracy;
      char b[32];
      std::snprintf(b, sizeof b, "%s%.2f", each.empty() ? "" : " / ", 100.0 * r->test_accuracy);
      each += b;
      secs.push_back(r->seconds);
    }
    std::sort(secs.begin(), secs.end());
    std::printf("| %s | %s | %.2f | %s | %.1f |\n", key.first ? std::to_string(key.first).c_str() : "all (0-4)",
                key.second.c_str(), 100.0 * sum / static_cast<double>(g.size()), each.c_str(), secs[secs.size() / 2]);
  }
  return 0;
}
