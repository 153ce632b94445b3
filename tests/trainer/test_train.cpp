// Tests of the training loop and model runtime: parameter count and FLOPs, losses, freezing,
// batch norm modes, dropout determinism, early stopping, NaN detection, callbacks, checkpoint
// resume bit equality, training files, and a short real Fashion-MNIST run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/loss.hpp"
#include "trainer/model.hpp"
#include "trainer/train.hpp"

namespace kestrel::trainer {
namespace {

namespace fs = std::filesystem;

std::string src(const std::string& rel) { return std::string(KESTREL_SOURCE_DIR) + "/" + rel; }

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("kestrel_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A learnable image set: class k lights up a 2x2 block at a class-specific place, plus noise.
Dataset blobs(int64_t n, int classes, uint64_t seed, int c = 1, int h = 8, int w = 8) {
  Dataset d;
  d.n = n;
  d.c = c;
  d.h = h;
  d.w = w;
  d.num_classes = classes;
  d.x.resize(static_cast<size_t>(n) * c * h * w);
  d.y.resize(n);
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int k = static_cast<int>(rng.below(classes));
    d.y[i] = k;
    float* s = d.x.data() + i * c * h * w;
    for (int j = 0; j < c * h * w; ++j) s[j] = static_cast<float>(0.3 * rng.uniform());
    const int by = (2 * k) % (h - 1), bx = (3 * k) % (w - 1);
    for (int ch = 0; ch < c; ++ch)
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx) s[(ch * h + by + dy) * w + bx + dx] += 1.0f;
  }
  return d;
}

Graph small_cnn(bool with_dropout_and_bn) {
  Graph g({1, 8, 8});
  int x = g.add(ops::conv2d(4, 3, 1, 1), g.input(), "conv");
  if (with_dropout_and_bn) x = g.add(ops::batch_norm(), x, "bn");
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::flatten(), x);
  if (with_dropout_and_bn) x = g.add(ops::dropout(0.2f), x);
  x = g.add(ops::linear(16), x, "fc1");
  x = g.add(ops::relu(), x);
  g.add(ops::linear(3), x, "fc2");
  return g;
}

TrainSpec small_spec(bool with_dropout_and_bn) {
  TrainSpec s;
  s.model = small_cnn(with_dropout_and_bn);
  s.epochs = 4;
  s.batch_size = 16;
  s.seed = 11;
  s.threads = 2;
  s.lr = 5e-3f;
  s.evaluate_test = false;
  return s;
}

TrainData small_data() {
  TrainData d;
  d.train = blobs(160, 3, 1);
  d.validation = blobs(48, 3, 2);
  return d;
}

// ---------------------------------------------------------------- counts

TEST(ModelFile, BenchmarkCnnHas225034ParametersAndItsFlops) {
  const Graph g = load_model_file(src("configs/models/cnn.yaml"));
  EXPECT_EQ(g.param_count(), 225034);
  // 2 x MACs: conv1 26*26*32*9, conv2 11*11*64*288, fc1 1600*128, fc2 128*10.
  EXPECT_EQ(g.flops_per_sample(), 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 128 * 10));
  EXPECT_EQ(g.output_shape(), (Shape{10, 1, 1}));
  const Graph m = load_model_file(src("configs/models/mlp.yaml"));
  EXPECT_EQ(m.param_count(), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
}

TEST(ModelFile, SkipAndConcatBranchesFromYaml) {
  const YAML::Node y = YAML::Load(R"(
input: [3, 8, 8]
nodes:
  - {op: conv2d, out: 4, kernel: 3, padding: 1, name: a}
  - {op: identity, name: skip, inputs: [a]}
  - {op: conv2d, out: 4, kernel: 1, name: b, inputs: [a]}
  - {op: add, name: sum, inputs: [skip, b]}
  - {op: concat, name: cat, inputs: [sum, input]}
  - {op: zero, name: none, inputs: [cat]}
  - {op: global_avg_pool, inputs: [cat]}
  - {op: linear, out: 2}
)");
  const Graph g = parse_model(y, "inline.yaml");
  EXPECT_EQ(g.node(g.find("cat")).shape, (Shape{7, 8, 8}));
  EXPECT_EQ(g.output_shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(g.node(g.find("sum")).inputs, (std::vector<int>{g.find("skip"), g.find("b")}));
}

TEST(ModelFile, ErrorsNameFileLineAndKey) {
  const YAML::Node y = YAML::Load("input: [1, 4, 4]\nnodes:\n  - {op: linear, out: 3}\n  - {op: conv2d, kernel: 3, outt: 2}\n");
  try {
    parse_model(y, "m.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("m.yaml:4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outt"), std::string::npos) << e.what();
  }
  const YAML::Node bad = YAML::Load("input: [2, 4, 4]\nnodes:\n  - {op: add, inputs: [input, nowhere]}\n");
  EXPECT_THROW(parse_model(bad, "m.yaml"), ConfigError);
  Graph g({3, 4, 4});
  EXPECT_THROW(g.add(ops::conv2d(4, 3, 1, 0, 2), g.input()), TrainError);  // 3 channels, 2 groups
}

// ---------------------------------------------------------------- losses

TEST(Losses, CrossEntropyWithLabelSmoothingMatchesHandComputation) {
  auto be = make_cpu_backend(1);
  const std::vector<float> z = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f, 3.0f};
  const std::vector<int32_t> y = {1, 0};
  LossSpec spec;
  spec.label_smoothing = 0.2f;
  Loss loss(spec, *be, 3);
  const BatchLoss b = loss.compute(z.data(), y.data(), 2, true);
  double expected = 0.0;
  std::vector<double> grad(6);
  for (int i = 0; i < 2; ++i) {
    double s = 0;
    for (int k = 0; k < 3; ++k) s += std::exp(z[i * 3 + k]);
    for (int k = 0; k < 3; ++k) {
      const double q = (k == y[i] ? 0.8 : 0.0) + 0.2 / 3;
      const double logp = z[i * 3 + k] - std::log(s);
      expected -= q * logp;
      grad[i * 3 + k] = (std::exp(logp) - q) / 2;
    }
  }
  EXPECT_NEAR(b.loss_sum / 2, expected / 2, 1e-6);
  EXPECT_EQ(b.correct, 1);  // sample 0 argmax 1 == label; sample 1 argmax 2 != 0
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(loss.grad()[i], grad[i], 1e-6);
}

TEST(Losses, MseAgainstOneHotTargets) {
  auto be = make_cpu_backend(1);
  const std::vector<float> z = {0.5f, 0.2f, -0.1f, 0.9f};
  const std::vector<int32_t> y = {0, 0};
  LossSpec spec;
  spec.kind = LossKind::kMse;
  Loss loss(spec, *be, 2);
  const BatchLoss b = loss.compute(z.data(), y.data(), 2, true);
  const double expected = (0.25 + 0.04 + 1.21 + 0.81) / 4;
  EXPECT_NEAR(b.loss_sum / 2, expected, 1e-6);
  EXPECT_NEAR(loss.grad()[0], 2 * (0.5 - 1) / 4, 1e-6);
  EXPECT_NEAR(loss.grad()[3], 2 * 0.9 / 4, 1e-6);
  EXPECT_EQ(b.correct, 1);
}

TEST(Losses, LabelOutsideTheOutputsIsRefused) {
  auto be = make_cpu_backend(1);
  Loss loss({}, *be, 3);
  const std::vector<float> z(3, 0.0f);
  const int32_t y = 3;
  EXPECT_THROW(loss.compute(z.data(), &y, 1, true), TrainError);
}

// ---------------------------------------------------------------- init

TEST(Init, KaimingAndXavierHaveTheirScale) {
  Graph g({1, 1, 400});
  g.add(ops::linear(300), g.input(), "fc");
  auto be = make_cpu_backend(1);
  auto stats = [&](InitKind k) {
    g.set_init(k);
    Model m(g, *be, 5);
    const auto w = m.tensor("fc.weight");
    double s = 0, s2 = 0, mx = 0;
    for (float v : w) {
      s += v;
      s2 += v * v;
      mx = std::max(mx, std::fabs(static_cast<double>(v)));
    }
    const auto b = m.tensor("fc.bias");
    double bmax = 0;
    for (float v : b) bmax = std::max(bmax, std::fabs(static_cast<double>(v)));
    return std::tuple{std::sqrt(s2 / w.size() - (s / w.size()) * (s / w.size())), mx, bmax};
  };
  auto [kn, kn_max, kn_b] = stats(InitKind::kKaimingNormal);
  EXPECT_NEAR(kn, std::sqrt(2.0 / 400), 0.02 * std::sqrt(2.0 / 400));
  EXPECT_EQ(kn_b, 0.0);
  auto [ku, ku_max, ku_b] = stats(InitKind::kKaimingUniform);
  EXPECT_LE(ku_max, std::sqrt(6.0 / 400));
  EXPECT_NEAR(ku, std::sqrt(6.0 / 400) / std::sqrt(3.0), 0.02 * std::sqrt(2.0 / 400));
  auto [xn, xn_max, xn_b] = stats(InitKind::kXavierNormal);
  EXPECT_NEAR(xn, std::sqrt(2.0 / 700), 0.02 * std::sqrt(2.0 / 700));
  auto [xu, xu_max, xu_b] = stats(InitKind::kXavierUniform);
  EXPECT_LE(xu_max, std::sqrt(6.0 / 700));
  auto [td, td_max, td_b] = stats(InitKind::kTorchDefault);
  EXPECT_LE(td_max, 1.0 / 20);
  EXPECT_GT(td_b, 0.0);  // PyTorch's default draws biases too
  EXPECT_LE(td_b, 1.0 / 20);
  // Same seed, same weights; another seed, other weights.
  g.set_init(InitKind::kTorchDefault);
  Model a(g, *be, 5), b(g, *be, 5), c(g, *be, 6);
  EXPECT_EQ(a.tensor("fc.weight"), b.tensor("fc.weight"));
  EXPECT_NE(a.tensor("fc.weight"), c.tensor("fc.weight"));
}

// ---------------------------------------------------------------- model runtime

TEST(Freezing, FrozenParametersStayAndOthersTrain) {
  TrainSpec s = small_spec(false);
  s.freeze = {"conv", "fc2.bias"};
  auto be = make_cpu_backend(1);
  Model before(s.model, *be, s.seed);
  s.save_weights = (scratch("freeze") / "w.safetensors").string();
  const TrainResult r = train(s, small_data());
  Model after(s.model, *be, 0);
  load_weights(after, s.save_weights, true);
  EXPECT_EQ(after.tensor("conv.weight"), before.tensor("conv.weight"));
  EXPECT_EQ(after.tensor("conv.bias"), before.tensor("conv.bias"));
  EXPECT_EQ(after.tensor("fc2.bias"), before.tensor("fc2.bias"));
  EXPECT_NE(after.tensor("fc1.weight"), before.tensor("fc1.weight"));
  EXPECT_NE(after.tensor("fc2.weight"), before.tensor("fc2.weight"));
  EXPECT_GT(r.final_metrics.val_accuracy, 0.5);
}

TEST(Freezing, PatternsAndZeroGradients) {
  auto be = make_cpu_backend(1);
  Model m(small_cnn(false), *be, 1);
  EXPECT_EQ(m.set_frozen("fc*"), 4);
  EXPECT_EQ(m.trainable_param_count(), m.param_count() - (64 * 16 + 16 + 16 * 3 + 3));
  EXPECT_THROW(m.set_frozen("nothing_like_this"), ConfigError);
  std::vector<float> x(4 * 64, 0.5f);
  x[3] = 2.0f;
  std::vector<float> g(4 * 3, 1.0f);
  m.forward(x.data(), 4, true);
  m.backward(g.data());
  for (size_t i = 0; i < m.params().size(); ++i) {
    std::vector<float> gr(m.params()[i].size);
    std::memcpy(gr.data(), m.grad_data(i), gr.size() * sizeof(float));
    double norm = 0;
    for (float v : gr) norm += std::fabs(v);
    if (m.frozen(i)) EXPECT_EQ(norm, 0.0) << m.params()[i].name;
    else EXPECT_GT(norm, 0.0) << m.params()[i].name;
  }
}

TEST(BatchNorm, TrainUpdatesRunningStatsAndEvalUsesThem) {
  Graph g({2, 1, 2});
  g.add(ops::batch_norm(1e-5f, 0.1f), g.input(), "bn");
  auto be = make_cpu_backend(1);
  Model m(g, *be, 1);
  // Channel 0 values {1, 3, 5, 7}, channel 1 values {0, 0, 2, 2} over 2 samples x 2 positions.
  const std::vector<float> x = {1, 3, 0, 0, 5, 7, 2, 2};
  const float* y = m.forward(x.data(), 2, true);
  // Training output: normalised by batch statistics (mean 4, biased var 5 for channel 0).
  EXPECT_NEAR(y[0], (1 - 4) / std::sqrt(5 + 1e-5), 1e-5);
  const auto rm = m.tensor("bn.running_mean"), rv = m.tensor("bn.running_var");
  EXPECT_NEAR(rm[0], 0.1 * 4, 1e-6);
  EXPECT_NEAR(rv[0], 0.9 + 0.1 * (20.0 / 3), 1e-5);  // unbiased variance 20/3
  EXPECT_NEAR(rm[1], 0.1 * 1, 1e-6);
  const float* e = m.forward(x.data(), 2, false);
  EXPECT_NEAR(e[0], (1 - rm[0]) / std::sqrt(rv[0] + 1e-5), 1e-5);
  EXPECT_NEAR(e[2], (0 - rm[1]) / std::sqrt(rv[1] + 1e-5), 1e-5);
  // Evaluation leaves the running statistics alone.
  EXPECT_EQ(m.tensor("bn.running_mean"), rm);
}

TEST(Dropout, SameSeedSameMaskAndRateAndEvalIsIdentity) {
  Graph g({1, 1, 4000});
  g.add(ops::dropout(0.25f), g.input());
  auto be = make_cpu_backend(2);
  Model a(g, *be, 3), b(g, *be, 3), c(g, *be, 4);
  std::vector<float> x(4000, 1.0f);
  auto run = [&](Model& m, bool train) {
    const float* y = m.forward(x.data(), 1, train);
    return std::vector<float>(y, y + 4000);
  };
  const auto ya = run(a, true), yb = run(b, true), yc = run(c, true);
  EXPECT_EQ(ya, yb);
  EXPECT_NE(ya, yc);
  int dropped = 0;
  for (float v : ya) {
    EXPECT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f);
    dropped += v == 0.0f;
  }
  EXPECT_NEAR(dropped / 4000.0, 0.25, 0.03);
  EXPECT_NE(run(a, true), ya);  // the next step draws a new mask
  EXPECT_EQ(run(a, false), x);
}

TEST(InputGradient, OnlyWhenRequestedAndMatchesLinearAlgebra) {
  Graph g({3, 1, 1});
  g.add(ops::linear(2, false), g.input(), "fc");
  auto be = make_cpu_backend(1);
  Model m(g, *be, 1);
  m.set_tensor("fc.weight", {1, 2, 3, 4, 5, 6});
  const std::vector<float> x = {1, 1, 1}, dy = {1, -1};
  m.forward(x.data(), 1, false);
  m.backward(dy.data(), true);
  const float* gx = m.input_grad();
  EXPECT_FLOAT_EQ(gx[0], 1 - 4);
  EXPECT_FLOAT_EQ(gx[1], 2 - 5);
  EXPECT_FLOAT_EQ(gx[2], 3 - 6);
}

// ---------------------------------------------------------------- loop

TEST(Training, LearnsTheBlobsAndReportsMetrics) {
  TrainSpec s = small_spec(true);
  s.target_accuracy = 0.9;
  const TrainResult r = train(s, small_data());
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  EXPECT_GT(r.final_metrics.val_accuracy, 0.9);
  EXPECT_GT(r.time_to_target, 0.0);
  EXPECT_GT(r.history[0].samples_per_second, 0.0);
  EXPECT_EQ(r.history.back().steps, 4 * 10);
  EXPECT_EQ(r.param_count, s.model.param_count());
}

TEST(Training, NonFiniteLossStopsWithAClearError) {
  TrainSpec s = small_spec(false);
  TrainData d = small_data();
  d.train.x[16 * 64 * 2 + 5] = std::nanf("");  // lands in some batch of epoch 1
  try {
    train(s, d);
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("NaN"), std::string::npos) << w;
    EXPECT_NE(w.find("epoch 1"), std::string::npos) << w;
  }
  TrainSpec big = small_spec(false);
  big.optimizer.kind = "sgd";
  big.optimizer.momentum = 0.0f;
  big.lr = 1e30f;
  EXPECT_THROW(train(big, small_data()), TrainError);
}

TEST(EarlyStopping, StopsAfterPatienceWithoutImprovement) {
  TrainSpec s = small_spec(false);
  s.epochs = 10;
  s.lr = 1e-30f;  // nothing learns, so validation loss never improves after epoch 1
  s.early_stopping.enabled = true;
  s.early_stopping.patience = 2;
  const TrainResult r = train(s, small_data());
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 3u);
  EXPECT_EQ(r.best.epoch, 1);
}

TEST(EarlyStopping, RestoresTheBestEpochsWeights) {
  // mode max on val_loss makes epoch 1 the best while the loss falls: the run must stop after
  // `patience` more epochs and end with epoch 1's weights, which its checkpoint holds.
  TrainSpec s = small_spec(false);
  s.epochs = 10;
  s.early_stopping.enabled = true;
  s.early_stopping.patience = 2;
  s.early_stopping.mode = "max";
  s.checkpoint_dir = scratch("restore_best").string();
  s.save_weights = (fs::path(s.checkpoint_dir) / "final.safetensors").string();
  const TrainResult r = train(s, small_data());
  ASSERT_TRUE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 3u);
  auto be = make_cpu_backend(1);
  Model final_model(s.model, *be, 0), epoch1(s.model, *be, 0), epoch3(s.model, *be, 0);
  load_weights(final_model, s.save_weights);
  load_weights(epoch1, s.checkpoint_dir + "/epoch-0001/model.safetensors");
  load_weights(epoch3, s.checkpoint_dir + "/epoch-0003/model.safetensors");
  EXPECT_EQ(final_model.tensor("fc1.weight"), epoch1.tensor("fc1.weight"));
  EXPECT_NE(final_model.tensor("fc1.weight"), epoch3.tensor("fc1.weight"));
  fs::remove_all(s.checkpoint_dir);
}

TEST(Training, CallbackReturningFalseStops) {
  TrainSpec s = small_spec(false);
  s.epochs = 6;
  int calls = 0;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochMetrics& m) { return ++calls < 2; };
  const TrainResult r = train(s, small_data(), cb);
  EXPECT_TRUE(r.stopped_by_callback);
  EXPECT_EQ(r.history.size(), 2u);
}

TEST(Checkpoint, ResumeReproducesTheUninterruptedRunBitForBit) {
  // Batch norm, dropout, augmentation and Adam: every piece of state a resume must restore.
  TrainSpec s = small_spec(true);
  s.epochs = 4;
  s.data.augment.pad_crop = 1;
  s.data.augment.hflip = true;
  const TrainData data = small_data();
  const fs::path dir = scratch("resume");

  TrainSpec full = s;
  full.save_weights = (dir / "full.safetensors").string();
  const TrainResult a = train(full, data);

  TrainSpec first = s;
  first.epochs = 2;
  first.checkpoint_dir = (dir / "ckpt").string();
  // A run planned for 4 epochs but stopped after 2 (the schedule must see the same total).
  TrainCallbacks stop_after_two;
  stop_after_two.on_epoch = [](const EpochMetrics& m) { return m.epoch < 2; };
  TrainSpec planned = s;
  planned.checkpoint_dir = first.checkpoint_dir;
  train(planned, data, stop_after_two);
  TrainSpec resumed = s;
  resumed.restore = first.checkpoint_dir;
  resumed.save_weights = (dir / "resumed.safetensors").string();
  const TrainResult b = train(resumed, data);

  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t e = 0; e < a.history.size(); ++e) {
    EXPECT_EQ(a.history[e].train_loss, b.history[e].train_loss) << "epoch " << e + 1;
    EXPECT_EQ(a.history[e].val_loss, b.history[e].val_loss) << "epoch " << e + 1;
  }
  auto be = make_cpu_backend(1);
  Model ma(s.model, *be, 0), mb(s.model, *be, 0);
  load_weights(ma, full.save_weights);
  load_weights(mb, resumed.save_weights);
  EXPECT_EQ(ma.state_dict(), mb.state_dict());
  // A checkpoint from another seed is refused.
  TrainSpec other = s;
  other.seed = 99;
  other.restore = first.checkpoint_dir;
  EXPECT_THROW(train(other, data), ConfigError);
  fs::remove_all(dir);
}

TEST(TransferLearning, InitFromLoadsTheFittingTensorsAndKeepsTheNewHead) {
  const fs::path dir = scratch("transfer");
  TrainSpec source = small_spec(false);
  source.epochs = 1;
  source.checkpoint_dir = (dir / "ckpt").string();
  train(source, small_data());
  // Same body, a 5-way head: fc2 does not fit and keeps its own initialisation.
  Graph g({1, 8, 8});
  int x = g.add(ops::conv2d(4, 3, 1, 1), g.input(), "conv");
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::linear(16), x, "fc1");
  x = g.add(ops::relu(), x);
  g.add(ops::linear(5), x, "fc2");
  TrainSpec target = small_spec(false);
  target.model = g;
  target.init_from = source.checkpoint_dir;
  target.freeze = {"conv", "fc1"};
  target.save_weights = (dir / "target.safetensors").string();
  train(target, small_data());
  auto be = make_cpu_backend(1);
  Model src_model(source.model, *be, 0), tgt(g, *be, 0), fresh(g, *be, target.seed);
  load_weights(src_model, source.checkpoint_dir + "/epoch-0001/model.safetensors");
  load_weights(tgt, target.save_weights);
  EXPECT_EQ(tgt.tensor("conv.weight"), src_model.tensor("conv.weight"));  // loaded, then frozen
  EXPECT_EQ(tgt.tensor("fc1.weight"), src_model.tensor("fc1.weight"));
  EXPECT_NE(tgt.tensor("fc2.weight"), fresh.tensor("fc2.weight"));  // new head trained
  TrainSpec nothing = small_spec(false);
  nothing.model = Graph({1, 8, 8});
  nothing.model.add(ops::linear(3), 0, "other");
  nothing.init_from = source.checkpoint_dir;
  EXPECT_THROW(train(nothing, small_data()), ConfigError);
  fs::remove_all(dir);
}

TEST(Backends, DeviceStringsAndRegisteredFactories) {
  EXPECT_EQ(make_backend("cpu", 1)->name(), "cpu");
  EXPECT_THROW(make_backend("tpu:0"), ConfigError);
  EXPECT_THROW(make_backend("cpu:x"), ConfigError);
  int seen_index = -1;
  register_backend("fakecpu", [&](int index, int threads) {
    seen_index = index;
    return make_cpu_backend(threads);
  });
  EXPECT_EQ(make_backend("fakecpu:3", 1)->name(), "cpu");
  EXPECT_EQ(seen_index, 3);
}

TEST(TrainSpecFile, ReadsTheExampleAndRefusesUnknownKeys) {
  const TrainSpec s = load_train_spec(src("configs/models/mlp.yaml"));
  EXPECT_EQ(s.epochs, 10);
  EXPECT_EQ(s.batch_size, 128);
  EXPECT_EQ(s.optimizer.kind, "adam");
  EXPECT_FLOAT_EQ(s.lr, 1e-3f);
  EXPECT_TRUE(s.early_stopping.enabled);
  EXPECT_EQ(s.early_stopping.patience, 3);
  const YAML::Node bad = YAML::Load("model: {input: [4], nodes: [{op: linear, out: 2}]}\ntraining:\n  epochs: 3\n  batchsize: 5\n");
  try {
    parse_train_spec(bad, "t.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml:4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("training.batchsize"), std::string::npos) << e.what();
  }
  const YAML::Node bad_opt = YAML::Load("model: {input: [4], nodes: [{op: linear, out: 2}]}\noptimizer: {kind: adamm}\n");
  EXPECT_THROW(parse_train_spec(bad_opt, "t.yaml"), ConfigError);
}

TEST(ModelFile, EveryExampleModelTrainsAtATinyBudget) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(src("configs/models"))) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    TrainSpec s = load_train_spec(entry.path().string());
    s.epochs = 1;
    s.data.subset = 300;
    s.data.test_subset = 100;
    s.checkpoint_dir.clear();
    const TrainResult r = train(s);
    ASSERT_EQ(r.history.size(), 1u);
    EXPECT_TRUE(std::isfinite(r.history[0].train_loss));
    EXPECT_TRUE(std::isfinite(r.test_accuracy));
    ++seen;
  }
  EXPECT_GE(seen, 3);
}

TEST(Training, ShortFashionMnistRunLearns) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TrainSpec s = load_train_spec(src("configs/models/mlp.yaml"));
  s.epochs = 2;
  s.data.subset = 3000;
  s.data.test_subset = 1000;
  s.threads = 2;
  const TrainResult r = train(s);
  EXPECT_GT(r.final_metrics.val_accuracy, 0.70);
  EXPECT_GT(r.test_accuracy, 0.70);
}

}  // namespace
}  // namespace kestrel::trainer
