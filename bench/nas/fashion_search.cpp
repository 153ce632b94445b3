// fashion_search: a real cell search on Fashion-MNIST with the CPU trainer inside a wall-clock budget, then the
// trainer benchmark's hand-designed CNN (configs/models/cnn.yaml) trained for the same wall-clock budget; or, with
// --train-arch, one given architecture and that CNN trained with the same epochs on the same data (a final comparison).
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nas/controllers.hpp"
#include "trainer/train.hpp"

using namespace kestrel;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  double budget_s = 600;
  int64_t subset = 10000, test_subset = 2000;
  int epochs = 2, channels = 8, stages = 2, threads = 2;
  uint64_t seed = 1;
  std::string kind = "nas_evolution", params_text = R"({"population": 6, "sample_size": 2})";
  std::string cnn_file = std::string(KESTREL_SOURCE_DIR) + "/configs/models/cnn.yaml";
  std::string train_arch, train_what = "both";
  double arch_lr = 0;
  int batch_size = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--budget-s") budget_s = std::stod(next());
    else if (a == "--subset") subset = std::stoll(next());
    else if (a == "--test-subset") test_subset = std::stoll(next());
    else if (a == "--epochs") epochs = std::stoi(next());
    else if (a == "--channels") channels = std::stoi(next());
    else if (a == "--stages") stages = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--controller") kind = next();
    else if (a == "--params") params_text = next();
    else if (a == "--cnn") cnn_file = next();
    else if (a == "--train-arch") train_arch = next();
    else if (a == "--train-what") train_what = next();
    else if (a == "--arch-lr") arch_lr = std::stod(next());
    else if (a == "--batch-size") batch_size = std::stoi(next());
    else {
      std::cerr << "usage: fashion_search [--budget-s S] [--subset N] [--test-subset N] [--epochs E] [--channels C] [--stages K]\n"
                   "  [--threads T] [--seed S] [--controller KIND] [--params JSON] [--cnn FILE]\n"
                   "  [--train-arch CANONICAL [--arch-lr LR] [--train-what both|arch|cnn]] [--batch-size B]\n";
      return 2;
    }
  }
  // The CNN's training file gives data, loss and optimizer for both sides; only the model differs.
  trainer::TrainSpec base = trainer::load_train_spec(cnn_file);
  base.data.subset = subset;
  base.data.test_subset = test_subset;  // the same test images for every trial and for the CNN
  base.threads = threads;
  base.seed = seed;
  if (batch_size > 0) base.batch_size = batch_size;
  base.early_stopping.enabled = false;
  base.target_accuracy = 0.0;
  const trainer::TrainData data = trainer::load_train_data(base);

  auto tuner = nas::make_nas_tuner(kind, nlohmann::json::parse(params_text), seed);
  auto* ctrl = dynamic_cast<nas::NasController*>(tuner.get());
  const search::SearchSpace space(ctrl->space().params());
  nas::CompileOptions co;
  co.input = {data.train.c, data.train.h, data.train.w};
  co.num_classes = data.train.num_classes;
  co.channels = channels;
  co.stages = stages;

  if (!train_arch.empty()) {
    // Final comparison: the same data, epochs, batch size, optimizer and seed for both models; the architecture may
    // keep the learning rate its search found (--arch-lr), the CNN keeps its file's. Separate processes
    // (--train-what) let the two run side by side, one thread each.
    auto run_one = [&](const std::string& what, trainer::TrainSpec spec) {
      spec.epochs = epochs;
      const double ts = now_s();
      trainer::TrainCallbacks cb;
      cb.on_epoch = [&](const trainer::EpochMetrics& m) {
        std::cerr << what << " epoch " << m.epoch << " val " << m.val_accuracy << " " << now_s() - ts << " s\n";
        return true;
      };
      const trainer::TrainResult r = trainer::train(spec, data, cb);
      std::cout << nlohmann::json{{"model", what}, {"arch", what == "cnn" ? "" : train_arch}, {"lr", spec.lr},
                                  {"epochs", r.history.size()}, {"params", r.param_count},
                                  {"final_val_accuracy", r.final_metrics.val_accuracy},
                                  {"test_accuracy", r.test_accuracy}, {"train_images", data.train.n},
                                  {"seconds", now_s() - ts}}
                       .dump()
                << std::endl;
    };
    if (train_what != "cnn") {
      trainer::TrainSpec spec = base;
      spec.model = nas::compile_arch(ctrl->space(), train_arch, co);
      if (arch_lr > 0) spec.lr = static_cast<float>(arch_lr);
      run_one("arch", spec);
    }
    if (train_what != "arch") run_one("cnn", base);
    return 0;
  }

  std::vector<search::Trial> trials;
  const double t0 = now_s();
  double best_val = -1, best_test = 0;
  std::string best_arch;
  while (now_s() - t0 < budget_s) {
    tuners::History h;
    h.space = &space;
    h.objectives = {search::Objective{"val_accuracy", search::Direction::Maximize}};
    for (const auto& t : trials) h.trials.push_back(&t);
    const int64_t number = static_cast<int64_t>(trials.size());
    tuners::Proposal p = tuner->ask(h, number);
    trainer::TrainSpec spec = base;
    spec.epochs = epochs;
    spec.model = nas::compile_arch(ctrl->space(), p.attrs.at("arch"), co);
    trainer::TrainCallbacks cb;
    cb.on_epoch = [&](const trainer::EpochMetrics&) { return now_s() - t0 < budget_s; };
    const trainer::TrainResult r = trainer::train(spec, data, cb);
    search::Trial t;
    t.number = number;
    t.config = p.config;
    t.attrs = p.attrs;
    t.state = search::TrialState::Complete;
    // Selection sees validation accuracy only; the test accuracy is recorded for the report.
    t.values = {r.best.val_accuracy};
    trials.push_back(t);
    std::cout << nlohmann::json{{"trial", number}, {"arch", p.attrs.at("arch")}, {"val_accuracy", r.best.val_accuracy},
                                {"test_accuracy", r.test_accuracy}, {"params", r.param_count},
                                {"epochs", r.history.size()}, {"elapsed_s", now_s() - t0}}
                     .dump()
              << std::endl;
    if (r.history.size() == static_cast<size_t>(epochs) && r.best.val_accuracy > best_val) {
      best_val = r.best.val_accuracy;
      best_test = r.test_accuracy;
      best_arch = p.attrs.at("arch");
    }
  }
  const double search_s = now_s() - t0;

  // The hand-designed CNN with the same wall-clock budget: as many epochs as fit.
  trainer::TrainSpec cnn = base;
  cnn.epochs = 1000;
  const double t1 = now_s();
  trainer::TrainCallbacks cb;
  cb.on_epoch = [&](const trainer::EpochMetrics&) { return now_s() - t1 < budget_s; };
  const trainer::TrainResult rc = trainer::train(cnn, data, cb);
  std::cout << nlohmann::json{{"summary", true},
                              {"budget_s", budget_s},
                              {"search_s", search_s},
                              {"trials", trials.size()},
                              {"best_arch", best_arch},
                              {"best_val_accuracy", best_val},
                              {"best_test_accuracy", best_test},
                              {"cnn_epochs", rc.history.size()},
                              {"cnn_val_accuracy", rc.final_metrics.val_accuracy},
                              {"cnn_test_accuracy", rc.test_accuracy},
                              {"cnn_s", now_s() - t1}}
                   .dump()
            << std::endl;
  return 0;
}
