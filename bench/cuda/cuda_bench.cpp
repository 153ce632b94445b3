// GPU benchmark of the trainer's CUDA backend: Fashion-MNIST MLP or CNN (the models of
// bench/trainer/torch_peer.py), Adam lr 1e-3, data kept on the device and shuffled there; prints
// one JSON object with seconds per training epoch and test accuracy after each epoch.
// Usage: kestrel_cuda_bench mlp|cnn BATCH EPOCHS [SEED [FASHION_MNIST_DIR]]
// Without the data files it trains on random images of the same shape ("data": "synthetic"):
// timings stay meaningful, accuracies do not.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "trainer/cuda/cuda_backend.hpp"
#include "trainer/cuda/device.hpp"
#include "trainer/data.hpp"
#include "trainer/graph.hpp"
#include "trainer/model.hpp"

using namespace kestrel::trainer;

namespace {

Graph make_graph(const std::string& which) {
  Graph g(Shape{1, 28, 28});
  int x = g.input();
  if (which == "mlp") {
    x = g.add(ops::linear(256), x);
    x = g.add(ops::relu(), x);
    x = g.add(ops::linear(128), x);
    x = g.add(ops::relu(), x);
    g.add(ops::linear(10), x);
    return g;
  }
  x = g.add(ops::conv2d(32, 3), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::conv2d(64, 3), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::linear(128), x);
  x = g.add(ops::relu(), x);
  g.add(ops::linear(10), x);
  return g;
}

Dataset synthetic(int64_t n, uint32_t seed) {
  Dataset d;
  d.n = n, d.c = 1, d.h = 28, d.w = 28, d.num_classes = 10;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  d.x.resize(static_cast<size_t>(n) * 784);
  for (auto& v : d.x) v = u(rng);
  d.y.resize(n);
  for (auto& y : d.y) y = static_cast<int32_t>(rng() % 10);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s mlp|cnn BATCH EPOCHS [SEED [FASHION_MNIST_DIR]]\n", argv[0]);
    return 2;
  }
  const std::string which = argv[1];
  const int bs = std::atoi(argv[2]), epochs = std::atoi(argv[3]);
  const uint64_t seed = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1;
  const std::string dir = argc > 5 ? argv[5] : kFashionMnistDir;
  if (cuda::device_count() == 0) {
    std::printf("{\"impl\": \"kestrel-cuda\", \"skipped\": \"no CUDA device: %s\"}\n", cuda::no_device_reason().c_str());
    return 0;
  }
  Dataset train, test;
  std::string data = "fashion-mnist";
  try {
    train = load_fashion_mnist(dir, true);
    test = load_fashion_mnist(dir, false);
  } catch (const kestrel::DataError&) {
    data = "synthetic";
    train = synthetic(60000, 1);
    test = synthetic(10000, 2);
  }
  // Normalise by the training set's mean and (population) std, as the PyTorch peer does.
  double s = 0, ss = 0;
  for (float v : train.x) s += v, ss += double(v) * v;
  const double mean = s / train.x.size(), sd = std::sqrt(ss / train.x.size() - mean * mean);
  for (auto* set : {&train, &test})
    for (auto& v : set->x) v = static_cast<float>((v - mean) / sd);

  try {
    cuda::CudaBackend gpu;
    Model model(make_graph(which), gpu, seed);
    model.plan(std::max(bs, 1024));
    const size_t last = model.params().size() - 1;
    const size_t flat = size_t(model.param_data(last) + model.params()[last].size - model.param_data(0));
    float* m = gpu.alloc(flat);
    float* v = gpu.alloc(flat);
    gpu.fill(m, 0.0f, flat);
    gpu.fill(v, 0.0f, flat);
    // The whole data set lives on the device; each epoch uploads one permutation.
    const size_t row = 784;
    float* xtr = gpu.alloc(train.x.size());
    float* xte = gpu.alloc(test.x.size());
    gpu.upload(xtr, train.x.data(), train.x.size());
    gpu.upload(xte, test.x.data(), test.x.size());
    int32_t* ytr = gpu.alloc_labels(train.n);
    int32_t* yte = gpu.alloc_labels(test.n);
    gpu.upload_labels(ytr, train.y.data(), train.n);
    gpu.upload_labels(yte, test.y.data(), test.n);
    int32_t* perm = gpu.alloc_labels(train.n);
    float* xb = gpu.alloc(size_t(bs) * row);
    int32_t* yb = gpu.alloc_labels(bs);
    float* dl = gpu.alloc(size_t(std::max(bs, 1024)) * 10);
    std::vector<int32_t> order(train.n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed);
    int64_t step = 0;
    std::printf("{\"impl\": \"kestrel-cuda\", \"model\": \"%s\", \"batch\": %d, \"data\": \"%s\", \"device\": \"%s\", \"epochs\": [",
                which.c_str(), bs, data.c_str(), cuda::describe_device(0).c_str());
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      gpu.synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      std::shuffle(order.begin(), order.end(), rng);
      gpu.upload_labels(perm, order.data(), train.n);
      double total = 0;
      for (int64_t s0 = 0; s0 < train.n; s0 += bs) {
        const int n = static_cast<int>(std::min<int64_t>(bs, train.n - s0));
        gpu.gather_rows(xb, xtr, perm + s0, n, row);
        gpu.gather_labels(yb, ytr, perm + s0, n);
        const float* out = model.forward(xb, n, true);
        double loss = 0;
        gpu.softmax_xent(dl, &loss, nullptr, out, yb, n, 10, 0.0f);
        model.backward(dl);
        cuda::AdamStep st;
        st.lr = 1e-3f, st.step = ++step;
        gpu.adam_step(model.param_data(0), model.grad_data(0), m, v, nullptr, flat, st);
        total += loss;
      }
      gpu.synchronize();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      int64_t correct = 0;
      for (int64_t s0 = 0; s0 < test.n; s0 += 1024) {
        const int n = static_cast<int>(std::min<int64_t>(1024, test.n - s0));
        const float* out = model.forward(xte + s0 * row, n, false);
        int64_t hits = 0;
        gpu.softmax_xent(nullptr, nullptr, &hits, out, yte + s0, n, 10, 0.0f);
        correct += hits;
      }
      std::printf("%s{\"epoch\": %d, \"train_seconds\": %.4f, \"test_accuracy\": %.5f, \"train_loss\": %.5f}",
                  epoch > 1 ? ", " : "", epoch, secs, double(correct) / test.n, total / train.n);
      std::fflush(stdout);
    }
    std::printf("], \"params\": %lld, \"cuda_mallocs\": %lld}\n", static_cast<long long>(model.param_count()),
                static_cast<long long>(gpu.pool().raw_allocations()));
    for (float* p : {m, v, xtr, xte, xb, dl}) gpu.free(p);
    for (int32_t* p : {ytr, yte, perm, yb}) gpu.free_labels(p);
  } catch (const kestrel::Error& e) {
    std::printf("\n{\"impl\": \"kestrel-cuda\", \"error\": \"%s\"}\n", e.what());
    return 1;
  }
  return 0;
}
