// Data parallelism on the CPU communicator (replicas in threads): collectives give every rank the
// same values, and training 2 replicas on halves of a global batch (gradients averaged) matches
// one replica trained on the whole batch. Runs without a GPU.
#include <gtest/gtest.h>

#include <span>
#include <thread>

#include "tests/trainer_cuda/cuda_test_util.hpp"
#include "trainer/cuda/communicator.hpp"
#include "trainer/graph.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"

namespace kestrel::trainer::cuda::testing {
namespace {

TEST(ThreadCommunicator, AllReduceMeanAndBroadcastGiveEveryRankTheSameValues) {
  const int world = 3;
  const size_t n = 1001;
  auto comms = make_thread_communicators(world);
  std::vector<std::vector<float>> data(world), bcast(world);
  for (int r = 0; r < world; ++r) {
    data[r] = random_vector(n, 400 + r);
    bcast[r] = random_vector(n, 500 + r);
  }
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = (data[0][i] + data[1][i] + data[2][i]) / 3.0f;
  const auto root = bcast[1];
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      comms[r]->all_reduce_mean(data[r].data(), n);
      comms[r]->broadcast(bcast[r].data(), n, 1);
      comms[r]->barrier();
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(data[r], data[0]) << "rank " << r << " differs bitwise from rank 0";
    EXPECT_TRUE(all_close(data[r], want, 1e-6, 1e-6)) << "rank " << r;
    EXPECT_EQ(bcast[r], root) << "rank " << r;
    EXPECT_EQ(comms[r]->rank(), r);
    EXPECT_EQ(comms[r]->world_size(), world);
  }
}

Graph small_mlp() {
  Graph g(Shape{1, 8, 8});
  int x = g.add(ops::linear(32), g.input());
  x = g.add(ops::relu(), x);
  g.add(ops::linear(10), x);
  return g;
}

size_t flat_size(Model& m) {
  const size_t last = m.params().size() - 1;
  return size_t(m.param_data(last) + m.params()[last].size - m.param_data(0));
}

TEST(DataParallel, TwoReplicasOnHalfBatchesMatchOneReplicaOnTheWholeBatch) {
  const int world = 2, local = 16, global = world * local, steps = 5, in = 64;
  const float lr = 1e-2f;
  std::vector<std::vector<float>> xs;
  std::vector<std::vector<int32_t>> ys;
  for (int s = 0; s < steps; ++s) {
    xs.push_back(random_vector(size_t(global) * in, 600 + s));
    std::vector<int32_t> y(global);
    for (int i = 0; i < global; ++i) y[i] = (i * 5 + s) % 10;
    ys.push_back(y);
  }
  // One replica, the whole batch.
  auto cpu = make_cpu_backend(1);
  Model single(small_mlp(), *cpu, 5);
  single.plan(global);
  const auto initial = single.state_dict();
  auto opt = make_optimizer(OptimizerSpec{});
  std::vector<double> single_loss(steps);
  std::vector<float> dl(size_t(global) * 10);
  for (int s = 0; s < steps; ++s) {
    const float* y = single.forward(xs[s].data(), global, true);
    cpu->softmax_xent(dl.data(), &single_loss[s], nullptr, y, ys[s].data(), global, 10, 0.0f);
    single.backward(dl.data());
    opt->step(std::span<ParamRef>(single.param_refs()), lr);
  }
  // Two replicas in threads; replica 1 starts from other weights until rank 0's are broadcast.
  auto comms = make_thread_communicators(world);
  std::vector<std::map<std::string, std::vector<float>>> weights(world);
  std::vector<std::vector<double>> losses(world, std::vector<double>(steps));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      auto be = make_cpu_backend(1);
      Model m(small_mlp(), *be, 5 + r);
      m.plan(local);
      const size_t flat = flat_size(m);
      comms[r]->broadcast(m.param_data(0), flat, 0);
      auto o = make_optimizer(OptimizerSpec{});
      std::vector<float> g(size_t(local) * 10);
      for (int s = 0; s < steps; ++s) {
        const float* x = xs[s].data() + size_t(r) * local * in;
        const float* y = m.forward(x, local, true);
        be->softmax_xent(g.data(), &losses[r][s], nullptr, y, ys[s].data() + r * local, local, 10, 0.0f);
        m.backward(g.data());
        comms[r]->all_reduce_mean(m.grad_data(0), flat);
        o->step(std::span<ParamRef>(m.param_refs()), lr);
      }
      weights[r] = m.state_dict();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(weights[0], weights[1]) << "replicas must stay bit-identical";
  for (int s = 0; s < steps; ++s)
    EXPECT_NEAR(losses[0][s] + losses[1][s], single_loss[s], 1e-5 * single_loss[s]) << "step " << s;
  // Only the order of the per-sample gradient sums differs (16 + 16 vs 32 at once).
  for (const auto& [name, w] : single.state_dict())
    EXPECT_TRUE(all_close(weights[0].at(name), w, 1e-5, 1e-4)) << name;
  bool moved = false;
  for (const auto& [name, w] : initial) moved = moved || w != weights[0].at(name);
  EXPECT_TRUE(moved) << "training must have changed the weights";
}

}  // namespace
}  // namespace kestrel::trainer::cuda::testing
