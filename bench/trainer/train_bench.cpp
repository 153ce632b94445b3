// Trains a model file on Fashion-MNIST exactly as the PyTorch peer does (all 60,000 training images,
// test set evaluated after every epoch) and prints one JSON object: seconds per epoch, test
// accuracy per epoch, inference images/s at batch 256.
// Usage: train_bench MODEL.yaml EPOCHS THREADS [SEED [FASHION_MNIST_DIR]]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "trainer/model.hpp"
#include "trainer/train.hpp"

using namespace kestrel::trainer;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.yaml EPOCHS THREADS [SEED [FASHION_MNIST_DIR]]\n", argv[0]);
    return 2;
  }
  TrainSpec spec = load_train_spec(argv[1]);
  spec.epochs = std::atoi(argv[2]);
  spec.threads = std::atoi(argv[3]);
  spec.seed = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1;
  if (argc > 5) spec.data.dir = argv[5];
  spec.data.validation_fraction = 0.0;
  spec.early_stopping.enabled = false;
  spec.evaluate_test = true;
  spec.checkpoint_dir.clear();
  // The peer normalises with the training set's mean and std as well (same numbers).
  TrainData data = load_train_data(spec);
  data.validation = data.test;  // per-epoch "validation" is the test set, as in the peer
  const TrainResult r = train(spec, data);

  std::printf("{\"impl\": \"kestrel\", \"epochs\": [");
  for (size_t i = 0; i < r.history.size(); ++i) {
    const auto& m = r.history[i];
    std::printf("%s{\"epoch\": %d, \"train_seconds\": %.4f, \"test_accuracy\": %.5f, \"train_loss\": %.5f}",
                i ? ", " : "", m.epoch, static_cast<double>(data.train.n) / m.samples_per_second,
                m.val_accuracy, m.train_loss);
  }
  // Inference throughput: eval-mode forward over the test set at batch 256, best of 3 passes.
  auto backend = make_cpu_backend(spec.threads);
  Model model(spec.model, *backend, spec.seed);
  const int bs = 256;
  model.plan(bs);
  const int64_t ss = data.test.sample_size();
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < data.test.n; s += bs) {
      const int n = static_cast<int>(std::min<int64_t>(bs, data.test.n - s));
      model.forward(data.test.x.data() + s * ss, n, false);
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("], \"inference_images_per_second\": %.1f, \"params\": %lld}\n",
              static_cast<double>(data.test.n) / best, static_cast<long long>(r.param_count));
  return 0;
}
