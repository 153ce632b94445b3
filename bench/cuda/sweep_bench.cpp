// Trials per hour of a small MLP sweep on the GPU(s) with trials_per_gpu trials packed on each
// GPU (engine::DevicePool leases), as in the benchmark: the same sweep with 1 and with 8
// trials per GPU. Each trial has its own CudaBackend (stream, cuBLAS/cuDNN handles, memory pool)
// and its own copy of the training subset on the device; learning rates are log-spaced.
// Usage: kestrel_cuda_sweep_bench TRIALS TRIALS_PER_GPU EPOCHS [SUBSET [FASHION_MNIST_DIR]]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "engine/device_pool.hpp"
#include "trainer/cuda/cuda_backend.hpp"
#include "trainer/cuda/device.hpp"
#include "trainer/data.hpp"
#include "trainer/graph.hpp"
#include "trainer/model.hpp"

using namespace kestrel;
using namespace kestrel::trainer;

namespace {

Graph mlp() {
  Graph g(Shape{1, 28, 28});
  int x = g.add(ops::linear(256), g.input());
  x = g.add(ops::relu(), x);
  x = g.add(ops::linear(128), x);
  x = g.add(ops::relu(), x);
  g.add(ops::linear(10), x);
  return g;
}

// One trial: train `epochs` epochs at batch 128 with Adam(lr), return test accuracy.
double run_trial(int device, float lr, int epochs, const Dataset& train, const Dataset& test, uint64_t seed) {
  cuda::CudaBackend gpu(cuda::CudaOptions{device, false});
  Model model(mlp(), gpu, seed);
  const int bs = 128, eval_bs = 1024;
  model.plan(eval_bs);
  const size_t row = 784, last = model.params().size() - 1;
  const size_t flat = size_t(model.param_data(last) + model.params()[last].size - model.param_data(0));
  float* m = gpu.alloc(flat);
  float* v = gpu.alloc(flat);
  gpu.fill(m, 0.0f, flat);
  gpu.fill(v, 0.0f, flat);
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
  float* dl = gpu.alloc(size_t(eval_bs) * 10);
  std::vector<int32_t> order(train.n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  int64_t step = 0;
  for (int e = 0; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    gpu.upload_labels(perm, order.data(), train.n);
    for (int64_t s0 = 0; s0 < train.n; s0 += bs) {
      const int n = static_cast<int>(std::min<int64_t>(bs, train.n - s0));
      gpu.gather_rows(xb, xtr, perm + s0, n, row);
      gpu.gather_labels(yb, ytr, perm + s0, n);
      const float* out = model.forward(xb, n, true);
      double loss = 0;
      gpu.softmax_xent(dl, &loss, nullptr, out, yb, n, 10, 0.0f);
      model.backward(dl);
      cuda::AdamStep st;
      st.lr = lr, st.step = ++step;
      gpu.adam_step(model.param_data(0), model.grad_data(0), m, v, nullptr, flat, st);
    }
  }
  int64_t correct = 0;
  for (int64_t s0 = 0; s0 < test.n; s0 += eval_bs) {
    const int n = static_cast<int>(std::min<int64_t>(eval_bs, test.n - s0));
    int64_t hits = 0;
    gpu.softmax_xent(nullptr, nullptr, &hits, model.forward(xte + s0 * row, n, false), yte + s0, n, 10, 0.0f);
    correct += hits;
  }
  for (float* p : {m, v, xtr, xte, xb, dl}) gpu.free(p);
  for (int32_t* p : {ytr, yte, perm, yb}) gpu.free_labels(p);
  return double(correct) / test.n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s TRIALS TRIALS_PER_GPU EPOCHS [SUBSET [FASHION_MNIST_DIR]]\n", argv[0]);
    return 2;
  }
  const int trials = std::atoi(argv[1]), per_gpu = std::atoi(argv[2]), epochs = std::atoi(argv[3]);
  const int64_t subset = argc > 4 ? std::atoll(argv[4]) : -1;
  const std::string dir = argc > 5 ? argv[5] : kFashionMnistDir;
  const int gpus = cuda::device_count();
  if (gpus == 0) {
    std::printf("{\"impl\": \"kestrel-cuda-sweep\", \"skipped\": \"no CUDA device: %s\"}\n", cuda::no_device_reason().c_str());
    return 0;
  }
  Dataset train, test;
  std::string data = "fashion-mnist";
  try {
    train = load_fashion_mnist(dir, true, subset);
    test = load_fashion_mnist(dir, false);
  } catch (const DataError&) {
    data = "synthetic";
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto [set, n] : {std::pair{&train, subset > 0 ? subset : int64_t(60000)}, std::pair{&test, int64_t(10000)}}) {
      set->n = n, set->c = 1, set->h = 28, set->w = 28, set->num_classes = 10;
      set->x.resize(size_t(n) * 784);
      for (auto& x : set->x) x = u(rng);
      set->y.resize(n);
      for (auto& y : set->y) y = int32_t(rng() % 10);
    }
  }
  engine::DevicePool pool = engine::DevicePool::uniform(gpus, per_gpu);
  std::atomic<int> next{0};
  std::mutex mu;
  double best = 0;
  std::string error;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < std::min(trials, gpus * per_gpu); ++w)
    workers.emplace_back([&] {
      for (int t; (t = next++) < trials;) {
        const float lr = static_cast<float>(1e-4 * std::pow(100.0, trials > 1 ? double(t) / (trials - 1) : 0.0));
        engine::DeviceLease lease = pool.acquire({1, 0});
        try {
          const double acc = run_trial(lease.devices()[0], lr, epochs, train, test, 1 + t);
          std::lock_guard<std::mutex> lock(mu);
          best = std::max(best, acc);
        } catch (const Error& e) {  // a failing trial fails alone
          std::lock_guard<std::mutex> lock(mu);
          error = e.what();
        }
      }
    });
  for (auto& w : workers) w.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"impl\": \"kestrel-cuda-sweep\", \"trials\": %d, \"trials_per_gpu\": %d, \"gpus\": %d, \"epochs\": %d, "
              "\"train_samples\": %lld, \"data\": \"%s\", \"seconds\": %.3f, \"trials_per_hour\": %.1f, "
              "\"best_test_accuracy\": %.4f, \"error\": \"%s\"}\n",
              trials, per_gpu, gpus, epochs, static_cast<long long>(train.n), data.c_str(), secs, trials * 3600.0 / secs,
              best, error.c_str());
  return error.empty() ? 0 : 1;
}
