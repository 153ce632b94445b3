// Times the trainer's forward + backward + Adam step on the benchmark models (MLP, CNN) at batch 128
// with synthetic data, per phase, so kernel work can be compared with PyTorch on the same shapes.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "trainer/cpu/gemm.hpp"
#include "trainer/data.hpp"
#include "trainer/graph.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"

using namespace kestrel::trainer;
using Clock = std::chrono::steady_clock;

static Graph mlp() {
  Graph g({1, 28, 28});
  int x = g.add(ops::flatten(), g.input());
  x = g.add(ops::linear(256), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::linear(128), x);
  x = g.add(ops::relu(), x);
  g.add(ops::linear(10), x);
  return g;
}

static Graph cnn() {
  Graph g({1, 28, 28});
  int x = g.add(ops::conv2d(32, 3), g.input());
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::conv2d(64, 3), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::flatten(), x);
  x = g.add(ops::linear(128), x);
  x = g.add(ops::relu(), x);
  g.add(ops::linear(10), x);
  return g;
}

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "mlp";
  const int steps = argc > 2 ? std::atoi(argv[2]) : 100;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int batch = 128;
  auto be = make_cpu_backend(threads);
  Model m(which == "cnn" ? cnn() : mlp(), *be, 1);
  m.plan(batch);
  OptimizerSpec os;
  os.kind = "adam";
  auto opt = make_optimizer(os);
  std::vector<float> x(batch * 784);
  std::vector<int32_t> y(batch);
  SplitMix64 rng(3);
  for (auto& v : x) v = static_cast<float>(rng.uniform());
  for (auto& v : y) v = static_cast<int32_t>(rng.below(10));
  float* dl = be->alloc(batch * 10);
  int32_t* labels = be->alloc_labels(batch);
  be->upload_labels(labels, y.data(), batch);
  double tf = 0, tb = 0, to = 0;
  for (int s = 0; s < steps + 5; ++s) {
    auto t0 = Clock::now();
    const float* out = m.forward(x.data(), batch, true);
    double loss;
    int64_t correct;
    be->softmax_xent(dl, &loss, &correct, out, labels, batch, 10, 0.0f);
    auto t1 = Clock::now();
    m.backward(dl);
    auto t2 = Clock::now();
    opt->step(m.param_refs(), 1e-3f);
    auto t3 = Clock::now();
    if (s >= 5) {
      tf += std::chrono::duration<double>(t1 - t0).count();
      tb += std::chrono::duration<double>(t2 - t1).count();
      to += std::chrono::duration<double>(t3 - t2).count();
    }
  }
  const double per_epoch = 60000.0 / batch / steps;
  std::printf("%s gemm=%s threads=%d: forward %.3f s/epoch, backward %.3f, optimizer %.3f, total %.3f\n",
              which.c_str(), kestrel::trainer::cpu::gemm_implementation(), threads, tf * per_epoch,
              tb * per_epoch, to * per_epoch, (tf + tb + to) * per_epoch);
  return 0;
}
