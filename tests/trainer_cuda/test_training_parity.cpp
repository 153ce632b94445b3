// Fused optimizer steps against the CPU Optimizer, and whole-model parity: N training steps of an
// MLP and a CNN on the CPU and on the GPU stay within a stated tolerance. Skips without a device.
#include <gtest/gtest.h>

#include <span>

#include "trainer/graph.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"
#include "tests/trainer_cuda/cuda_test_util.hpp"

namespace kestrel::trainer::cuda::testing {
namespace {

// Runs `steps` updates of one parameter with the CPU Optimizer and with the fused CUDA step.
// The fused kernels may contract a*b+c into one FMA where the CPU rounds twice: a few ulp per
// step, hence 1e-6 absolute / 1e-5 relative after five steps.
void compare_adam(CudaBackend& gpu, OptimizerSpec spec) {
  const size_t n = 5000;
  auto w = random_vector(n, 90);
  const auto w0 = w;
  DeviceBuf gw(gpu, w0), gm(gpu, n), gv(gpu, n), gvmax(gpu, n), gg(gpu, n);
  auto opt = make_optimizer(spec);
  const float lr = 1e-2f;
  for (int step = 1; step <= 5; ++step) {
    auto g = random_vector(n, 100 + step);
    ParamRef p;
    p.name = "w", p.value = w.data(), p.grad = g.data(), p.size = int64_t(n);
    std::vector<ParamRef> refs{p};
    opt->step(std::span<ParamRef>(refs), lr);
    gpu.upload(gg.get(), g.data(), n);
    AdamStep s;
    s.lr = lr, s.beta1 = spec.beta1, s.beta2 = spec.beta2, s.eps = spec.eps, s.weight_decay = spec.weight_decay;
    s.decoupled = spec.kind == "adamw", s.step = step;
    gpu.adam_step(gw.get(), gg.get(), gm.get(), gv.get(), spec.amsgrad ? gvmax.get() : nullptr, n, s);
  }
  EXPECT_TRUE(all_close(gw.host(), w, 1e-6, 1e-5)) << spec.kind << " amsgrad " << spec.amsgrad;
  EXPECT_FALSE(all_close(w, w0, 0, 0)) << "the steps must have moved the weights";
}

TEST_F(CudaParity, FusedAdamAndAdamWMatchTheCpuOptimizer) {
  OptimizerSpec adam;
  adam.kind = "adam";
  compare_adam(*gpu_, adam);
  adam.weight_decay = 0.01f;
  adam.amsgrad = true;
  compare_adam(*gpu_, adam);
  OptimizerSpec adamw;
  adamw.kind = "adamw";
  adamw.weight_decay = 0.05f;
  compare_adam(*gpu_, adamw);
}

TEST_F(CudaParity, FusedSgdMatchesTheCpuOptimizer) {
  for (bool nesterov : {false, true})
    for (float momentum : {0.0f, 0.9f}) {
      if (nesterov && momentum == 0.0f) continue;
      OptimizerSpec spec;
      spec.kind = "sgd", spec.momentum = momentum, spec.nesterov = nesterov, spec.weight_decay = 1e-3f;
      spec.dampening = 0.0f;
      const size_t n = 3000;
      auto w = random_vector(n, 91);
      DeviceBuf gw(*gpu_, w), gbuf(*gpu_, n), gg(*gpu_, n);
      auto opt = make_optimizer(spec);
      for (int step = 1; step <= 4; ++step) {
        auto g = random_vector(n, 200 + step);
        ParamRef p;
        p.name = "w", p.value = w.data(), p.grad = g.data(), p.size = int64_t(n);
        std::vector<ParamRef> refs{p};
        opt->step(std::span<ParamRef>(refs), 0.05f);
        gpu_->upload(gg.get(), g.data(), n);
        SgdStep s;
        s.lr = 0.05f, s.momentum = momentum, s.nesterov = nesterov, s.weight_decay = 1e-3f, s.step = step;
        gpu_->sgd_step(gw.get(), gg.get(), gbuf.get(), n, s);
      }
      EXPECT_TRUE(all_close(gw.host(), w, 1e-6, 1e-5)) << "momentum " << momentum << " nesterov " << nesterov;
    }
}

Graph mlp() {
  Graph g(Shape{1, 28, 28});
  int x = g.add(ops::linear(64), g.input());
  x = g.add(ops::relu(), x);
  x = g.add(ops::linear(10), x);
  return g;
}

Graph cnn() {
  Graph g(Shape{1, 28, 28});
  int x = g.add(ops::conv2d(8, 3), g.input());
  x = g.add(ops::batch_norm(), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::conv2d(16, 3, 1, 1), x);
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::linear(10), x);
  return g;
}

// Trains the same graph from the same seed on both backends: Adam, 6 steps, batch 32 of random
// images. Per-step losses within 1e-4 relative and final weights within 1e-3 absolute: FP32 op
// differences of ~1e-6 grow through 6 Adam steps, whose first steps move every weight by ~lr
// regardless of the gradient's size (so a sign flip of a near-zero gradient moves it 2 lr).
void train_both(CudaBackend& gpu, const Graph& graph, const char* what) {
  const int n = 32, steps = 6;
  auto cpu = make_cpu_backend(1);
  Model mc(graph, *cpu, 7), mg(graph, gpu, 7);
  mc.plan(n);
  mg.plan(n);
  auto opt = make_optimizer(OptimizerSpec{});
  const float lr = 1e-3f;
  const size_t in_n = size_t(n) * graph.input_shape().size();
  float* gx = gpu.alloc(in_n);
  float* gdl = gpu.alloc(size_t(n) * 10);
  int32_t* glab = gpu.alloc_labels(n);
  // Adam state for the flat parameter range (padding between tensors has zero gradient and stays).
  const size_t last = mg.params().size() - 1;
  const size_t flat = size_t(mg.param_data(last) + mg.params()[last].size - mg.param_data(0));
  DeviceBuf m(gpu, flat), v(gpu, flat);
  std::vector<float> dl(size_t(n) * 10);
  std::vector<int32_t> labels(n);
  int64_t raw_after_first = -1;
  for (int step = 1; step <= steps; ++step) {
    const auto x = random_vector(in_n, 300 + step);
    for (int i = 0; i < n; ++i) labels[i] = (i * 3 + step) % 10;
    double lc = 0, lg = 0;
    const float* yc = mc.forward(x.data(), n, true);
    cpu->softmax_xent(dl.data(), &lc, nullptr, yc, labels.data(), n, 10, 0.0f);
    mc.backward(dl.data());
    opt->step(std::span<ParamRef>(mc.param_refs()), lr);

    gpu.upload(gx, x.data(), in_n);
    gpu.upload_labels(glab, labels.data(), n);
    const float* yg = mg.forward(gx, n, true);
    gpu.softmax_xent(gdl, &lg, nullptr, yg, glab, n, 10, 0.0f);
    mg.backward(gdl);
    AdamStep s;
    s.lr = lr, s.step = step;
    gpu.adam_step(mg.param_data(0), mg.grad_data(0), m.get(), v.get(), nullptr, flat, s);
    EXPECT_NEAR(lg, lc, 1e-4 * std::abs(lc)) << what << " step " << step;
    if (step == 1) raw_after_first = gpu.pool().raw_allocations();
  }
  EXPECT_EQ(gpu.pool().raw_allocations(), raw_after_first) << what << ": cudaMalloc inside the training loop";
  const auto sc = mc.state_dict(), sg = mg.state_dict();
  for (const auto& [name, values] : sc) EXPECT_TRUE(all_close(sg.at(name), values, 1e-3, 1e-3)) << what << " " << name;
  gpu.free(gx);
  gpu.free(gdl);
  gpu.free_labels(glab);
}

TEST_F(CudaParity, MlpTrainingStepsStayCloseToCpu) { train_both(*gpu_, mlp(), "mlp"); }
TEST_F(CudaParity, CnnWithBatchNormTrainingStepsStayCloseToCpu) { train_both(*gpu_, cnn(), "cnn"); }

}  // namespace
}  // namespace kestrel::trainer::cuda::testing
