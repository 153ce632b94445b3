// Golden test: a tiny CNN (conv, batch norm, ReLU, max pool, linear, tanh) trained for 10 Adam steps
// on one fixed batch with label smoothing must follow PyTorch's loss trajectory
// (tests/trainer/golden/tiny_cnn.json, written by make_golden.py in float64 from float32 inputs).
// Tolerance 2e-5 absolute per step: float32 rounding over 10 steps stays near 1e-6.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "trainer/loss.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"

namespace kestrel::trainer {
namespace {

TEST(Golden, TinyCnnLossTrajectoryMatchesPyTorch) {
  std::ifstream in(std::string(KESTREL_SOURCE_DIR) + "/tests/trainer/golden/tiny_cnn.json");
  ASSERT_TRUE(in) << "fixture missing";
  const nlohmann::json j = nlohmann::json::parse(in);

  Graph g({2, 6, 6});
  int x = g.add(ops::conv2d(4, 3, 1, 1, 1, false), g.input(), "conv");
  x = g.add(ops::batch_norm(), x, "bn");
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::flatten(), x);
  x = g.add(ops::linear(8), x, "fc1");
  x = g.add(ops::tanh(), x);
  g.add(ops::linear(5), x, "fc2");

  auto backend = make_cpu_backend(2);
  Model model(g, *backend, 0);
  for (auto& [name, values] : j.at("params").items()) model.set_tensor(name, values.get<std::vector<float>>());
  const std::vector<float> xs = j.at("x").get<std::vector<float>>();
  const std::vector<int32_t> ys = j.at("y").get<std::vector<int32_t>>();
  const int n = static_cast<int>(ys.size());

  LossSpec ls;
  ls.label_smoothing = j.at("label_smoothing").get<float>();
  Loss loss(ls, *backend, 5);
  OptimizerSpec os;
  os.kind = "adam";
  auto opt = make_optimizer(os);
  const float lr = j.at("optimizer").at("lr").get<float>();
  const auto ref = j.at("losses").get<std::vector<double>>();
  double worst = 0.0;
  for (size_t step = 0; step < ref.size(); ++step) {
    const float* out = model.forward(xs.data(), n, true);
    const BatchLoss b = loss.compute(out, ys.data(), n, true);
    const double ours = b.loss_sum / n;
    worst = std::max(worst, std::fabs(ours - ref[step]));
    EXPECT_NEAR(ours, ref[step], 2e-5) << "step " << step;
    model.backward(loss.grad());
    opt->step(model.param_refs(), lr);
  }
  RecordProperty("worst_abs_diff", std::to_string(worst));
  const auto rm = model.tensor("bn.running_mean"), rv = model.tensor("bn.running_var");
  const auto rm_ref = j.at("running_mean_after").get<std::vector<double>>();
  const auto rv_ref = j.at("running_var_after").get<std::vector<double>>();
  for (size_t c = 0; c < rm.size(); ++c) {
    EXPECT_NEAR(rm[c], rm_ref[c], 1e-5);
    EXPECT_NEAR(rv[c], rv_ref[c], 1e-5);
  }
  // The trajectory must actually move, or matching it would prove little.
  EXPECT_LT(ref.back(), ref.front() - 0.5);
}

}  // namespace
}  // namespace kestrel::trainer
