// Fashion-MNIST multi-fidelity figure: an ASHA sweep of the built-in trainer (promotions continue from their
// parents' checkpoints) against a full-budget sweep of the same configurations; prints a JSON summary.
//
// Usage: mf_fashion OUT_DIR [--configs 27] [--max-epochs 9] [--eta 3] [--subset 6000] [--jobs 1] [--threads 2]
//                 [--seed 1] [--rank-check PAIRS]
// --rank-check: ASHA's rank check of its low rungs with min_rank_pairs PAIRS and min_rank_agreement 0.4 (0: off);
// new configurations may then start above rung 0, and the full sweep trains every configuration ASHA started.
// One job promotes eagerly (ASHA asks after every trial), so rung 0 holds exactly --configs configurations; with
// more jobs ASHA starts more of them before the first promotions (the full sweep then gets those).
// OUT_DIR gets the training file, the SQLite store (studies "asha" and "full") and the per-trial folders.
// The ASHA study runs n0 + n0/eta + n0/eta^2 + ... trials (n0 = --configs), which with eager asynchronous
// promotion is n0 rung-0 configurations; the full study then trains each of those n0 configurations for
// --max-epochs epochs. Epochs are counted from the stored per-epoch reports (a promoted trial reports only the
// epochs it trained after restoring its parent's checkpoint).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "engine/trainer_evaluator.hpp"
#include "store/store.hpp"
#include "tuners/multifidelity.hpp"

namespace fs = std::filesystem;
using namespace kestrel;
using namespace kestrel::engine;

namespace {

// A small MLP on a subset of Fashion-MNIST, Adam at a constant learning rate (so a continued run equals an
// uninterrupted one), no early stopping (a trial trains exactly its budget).
void write_train_file(const fs::path& p, int subset, int threads) {
  std::ofstream t(p);
  t << "model:\n"
       "  input: [1, 28, 28]\n"
       "  init: torch_default\n"
       "  nodes:\n"
       "    - {op: flatten}\n"
       "    - {op: linear, out: ${hidden}}\n"
       "    - {op: relu}\n"
       "    - {op: linear, out: 10}\n"
       "data: {dataset: fashion_mnist, validation: 0.2, normalize: true, subset: "
    << subset << ", test_subset: 2000}\n"
       "loss: {kind: cross_entropy}\n"
       "optimizer: {kind: adam, lr: 0.001}\n"
       "schedule: {kind: constant}\n"
       "training: {epochs: 1, batch_size: 64, seed: 1, threads: "
    << threads << ", evaluate_test: true}\n";
}

SearchSpace space() {
  using search::ParamSpec;
  return SearchSpace({ParamSpec::uniform("lr", 1e-4, 3e-2, true), ParamSpec::integer("hidden", 16, 256, true),
                      ParamSpec::uniform("weight_decay", 1e-6, 1e-2, true)});
}

struct Tally {
  int64_t epochs = 0;
  double best = -1.0;
  int64_t best_trial = -1;
  nlohmann::json best_config;
  double best_test = std::nan("");
  int64_t trials = 0, failed = 0;
};

Tally tally(Study& s) {
  Tally out;
  for (const auto& t : s.trials()) {
    ++out.trials;
    if (t.state == TrialState::Failed) ++out.failed;
    std::set<int64_t> steps;
    for (const auto& r : t.reports) steps.insert(r.step);
    out.epochs += static_cast<int64_t>(steps.size());
    if (t.state == TrialState::Complete && t.values[0] > out.best) {
      out.best = t.values[0];
      out.best_trial = t.number;
      out.best_config = search::config_to_json(t.config);
      auto it = t.attrs.find("test_accuracy");
      out.best_test = it == t.attrs.end() ? std::nan("") : std::stod(it->second);
    }
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: mf_fashion OUT_DIR [--configs N] [--max-epochs R] [--eta E] [--subset S] [--jobs J] "
                 "[--threads T] [--seed K]\n";
    return 2;
  }
  fs::path out = fs::absolute(argv[1]);
  int configs = 27, max_epochs = 9, eta = 3, subset = 6000, jobs = 1, threads = 2, seed = 1, rank_check = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::stoi(argv[i + 1]);
    if (k == "--configs") configs = v;
    else if (k == "--max-epochs") max_epochs = v;
    else if (k == "--eta") eta = v;
    else if (k == "--subset") subset = v;
    else if (k == "--jobs") jobs = v;
    else if (k == "--threads") threads = v;
    else if (k == "--seed") seed = v;
    else if (k == "--rank-check") rank_check = v;
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  fs::remove_all(out);
  fs::create_directories(out);
  const fs::path train_file = out / "mlp.yaml";
  write_train_file(train_file, subset, threads);
  std::shared_ptr<store::Store> store = store::open_store("sqlite:///" + (out / "k.db").string());
  const std::vector<search::Objective> objectives{{"val_accuracy", search::Direction::Maximize}};

  // 1. ASHA: rungs at 1, eta, eta^2, ... <= max_epochs.
  StudyOptions ao;
  ao.name = "asha";
  ao.space = space();
  ao.objectives = objectives;
  ao.tuner = "asha";
  ao.tuner_params = {{"min_resource", 1}, {"max_resource", max_epochs}, {"eta", eta}};
  if (rank_check > 0) {
    ao.tuner_params["min_rank_pairs"] = rank_check;
    ao.tuner_params["min_rank_agreement"] = 0.4;
  }
  ao.seed = static_cast<uint64_t>(seed);
  ao.heartbeat_interval = 0;
  int64_t n_trials = 0;
  for (int64_t n = configs; n > 0; n /= eta) n_trials += n;
  TrainerEvaluatorOptions eo;
  eo.train_file = train_file.string();
  auto t0 = std::chrono::steady_clock::now();
  Study asha(store, ao);
  {
    TrainerEvaluator ev(eo, objectives, ao.space);
    RunOptions ro;
    ro.n_trials = n_trials;
    ro.n_jobs = jobs;
    ro.runs_dir = (out / "runs").string();
    optimize(asha, ev, ro);
  }
  const double asha_s = seconds_since(t0);
  std::vector<Config> started;
  int64_t promoted = 0;
  for (const auto& t : asha.trials()) {
    if (t.attrs.count(tuners::kAttrRestoreFrom)) ++promoted;
    // Every configuration ASHA started (in rung 0, or above it when the rank check raised the start).
    if (t.attrs.count(tuners::kAttrRung) && !t.attrs.count(tuners::kAttrPromotedFrom)) started.push_back(t.config);
  }

  // 2. The same configurations, each trained for max_epochs from scratch.
  StudyOptions fo = ao;
  fo.name = "full";
  fo.tuner = "random";
  fo.tuner_params = nlohmann::json::object();
  Study full(store, fo);
  for (const auto& c : started) full.enqueue(c);
  t0 = std::chrono::steady_clock::now();
  {
    TrainerEvaluatorOptions feo = eo;
    feo.settings = {{"training", {{"epochs", max_epochs}}}};
    TrainerEvaluator ev(feo, objectives, fo.space);
    RunOptions ro;
    ro.n_trials = static_cast<int64_t>(started.size());
    ro.n_jobs = jobs;
    ro.runs_dir = (out / "runs").string();
    ro.checkpoints = false;
    optimize(full, ev, ro);
  }
  const double full_s = seconds_since(t0);

  Tally a = tally(asha), f = tally(full);
  nlohmann::json j;
  j["configs"] = started.size();
  j["max_epochs"] = max_epochs;
  j["eta"] = eta;
  j["subset"] = subset;
  j["jobs"] = jobs;
  j["threads"] = threads;
  j["rank_check"] = rank_check;
  auto row = [](const Tally& t, double secs) {
    return nlohmann::json{{"trials", t.trials},          {"failed", t.failed},
                          {"epochs", t.epochs},          {"best_val_accuracy", t.best},
                          {"best_trial", t.best_trial},  {"best_config", t.best_config},
                          {"best_test_accuracy", t.best_test}, {"seconds", secs}};
  };
  j["asha"] = row(a, asha_s);
  j["asha"]["promotions"] = promoted;
  j["full"] = row(f, full_s);
  j["epoch_ratio"] = f.epochs > 0 ? static_cast<double>(a.epochs) / static_cast<double>(f.epochs) : std::nan("");
  j["gap"] = f.best - a.best;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
