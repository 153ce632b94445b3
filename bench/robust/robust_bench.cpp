// Attack parity benchmark, Kestrel side: trains a model from a training file (or loads its weights),
// saves the weights (safetensors) and the input normalization, then times FGSM and PGD attacks on the test set.
//
// Usage: kestrel_robust_bench TRAIN.yaml OUT_DIR [--epochs N] [--repeats R] [--weights FILE] [--threads T]
//                             [--test-subset N]
// Writes OUT_DIR/model.safetensors, OUT_DIR/normalizer.json ({mean, stddev}) and prints one JSON object per
// (attack, epsilon) on stdout: accuracy, correct, n and the attack time of every repeat (seconds).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "trainer/attack.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/loss.hpp"
#include "trainer/model.hpp"
#include "trainer/train.hpp"

using namespace kestrel::trainer;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: kestrel_robust_bench TRAIN.yaml OUT_DIR [--epochs N] [--repeats R] [--weights FILE] "
                 "[--threads T] [--test-subset N]\n";
    return 2;
  }
  const std::string file = argv[1];
  const fs::path out = argv[2];
  int epochs = 0, repeats = 3, threads = 2;
  int64_t test_subset = 0;
  std::string weights;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--epochs") epochs = std::atoi(v.c_str());
    else if (k == "--repeats") repeats = std::atoi(v.c_str());
    else if (k == "--weights") weights = v;
    else if (k == "--threads") threads = std::atoi(v.c_str());
    else if (k == "--test-subset") test_subset = std::atoll(v.c_str());
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  fs::create_directories(out);
  TrainSpec spec = load_train_spec(file);
  if (epochs > 0) spec.epochs = epochs;
  spec.threads = threads;
  spec.data.test_subset = test_subset;
  spec.robustness.enabled = false;
  const TrainData data = load_train_data(spec);

  const fs::path wpath = out / "model.safetensors";
  if (weights.empty()) {
    spec.save_weights = wpath.string();
    const auto t0 = std::chrono::steady_clock::now();
    const TrainResult r = train(spec, data);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "trained " << r.history.size() << " epochs in " << s << " s, test accuracy " << r.test_accuracy << "\n";
  } else {
    fs::copy_file(weights, wpath, fs::copy_options::overwrite_existing);
  }
  {
    std::ofstream nf(out / "normalizer.json");
    nf << nlohmann::json{{"mean", data.domain.mean}, {"stddev", data.domain.stddev}}.dump() << "\n";
  }

  auto backend = make_backend(spec.device, threads);
  Model model(spec.model, *backend, spec.seed);
  load_weights(model, wpath.string(), true);
  const int classes = static_cast<int>(spec.model.output_shape().size());
  Loss loss(LossSpec{}, *backend, classes);
  ModelTarget target(model, loss);

  struct Case {
    AttackSpec attack;
    double eps;
  };
  std::vector<Case> cases;
  for (double eps : {0.05, 0.1}) {
    cases.push_back({AttackSpec{AttackKind::kFgsm, 0, 1}, eps});
    cases.push_back({AttackSpec{AttackKind::kPgdLinf, 0, 10}, eps});
    cases.push_back({AttackSpec{AttackKind::kPgdLinf, 0, 10, 0.0, true, 1}, eps});
  }
  for (const Case& c : cases) {
    RobustnessSpec rs;
    rs.epsilons = {c.eps};
    rs.attacks = {c.attack};
    rs.include_zero = false;
    rs.batch_size = 500;
    nlohmann::json times = nlohmann::json::array();
    RobustnessReport rep;
    for (int r = 0; r < repeats; ++r) {
      rep = evaluate_robustness(rs, target, data.domain, data.test, 500);
      times.push_back(rep.results.at(0).seconds);
    }
    const AttackResult& a = rep.results.at(0);
    nlohmann::json j{{"side", "kestrel"},        {"attack", a.attack},     {"steps", a.steps},
                     {"random_start", a.random_start}, {"epsilon", a.epsilon}, {"accuracy", a.accuracy},
                     {"correct", a.correct},      {"n", a.n},               {"clean_accuracy", rep.clean_accuracy},
                     {"seconds", times},          {"threads", threads}};
    std::cout << j.dump() << std::endl;
  }
  return 0;
}
