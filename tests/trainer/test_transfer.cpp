// Tests of transfer learning: weights matched by name and shape (partial matches and the report),
// head replacement, freeze_first, gradual unfreezing at epoch K, the transferred-parameter lr
// multiplier in every optimizer, class selection and few-label subsets, and the YAML keys.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/error.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/model.hpp"
#include "trainer/safetensors.hpp"
#include "trainer/train.hpp"
#include "trainer/transfer.hpp"

namespace kestrel::trainer {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("kestrel_transfer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A learnable image set: class k lights up a 2x2 block at a class-specific place, plus noise.
Dataset blobs(int64_t n, int classes, uint64_t seed) {
  const int h = 8, w = 8;
  Dataset d;
  d.n = n;
  d.c = 1;
  d.h = h;
  d.w = w;
  d.num_classes = classes;
  d.x.resize(static_cast<size_t>(n) * h * w);
  d.y.resize(n);
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int k = static_cast<int>(rng.below(classes));
    d.y[i] = k;
    float* s = d.x.data() + i * h * w;
    for (int j = 0; j < h * w; ++j) s[j] = static_cast<float>(0.3 * rng.uniform());
    const int by = (2 * k) % (h - 1), bx = (3 * k) % (w - 1);
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) s[(by + dy) * w + bx + dx] += 1.0f;
  }
  return d;
}

// conv -> fc1 (hidden) -> fc2 (classes): three parametrised layers.
Graph net(int hidden, int classes) {
  Graph g({1, 8, 8});
  int x = g.add(ops::conv2d(4, 3, 1, 1), g.input(), "conv");
  x = g.add(ops::relu(), x);
  x = g.add(ops::max_pool(2), x);
  x = g.add(ops::linear(hidden), x, "fc1");
  x = g.add(ops::relu(), x);
  g.add(ops::linear(classes), x, "fc2");
  return g;
}

TrainSpec spec_for(const Graph& g) {
  TrainSpec s;
  s.model = g;
  s.epochs = 3;
  s.batch_size = 16;
  s.seed = 5;
  s.threads = 1;
  s.lr = 5e-3f;
  s.evaluate_test = false;
  return s;
}

TrainData data_for(int classes) {
  TrainData d;
  d.train = blobs(96, classes, 1);
  d.validation = blobs(32, classes, 2);
  return d;
}

std::vector<std::string> skip_names(const TransferReport& r) {
  std::vector<std::string> out;
  for (const auto& s : r.skipped) out.push_back(s.name + ": " + s.reason);
  return out;
}

// ---------------------------------------------------------------- matching

TEST(TransferMatching, LoadsOnlyTensorsWhoseNameAndShapeMatchAndReportsTheRest) {
  auto be = make_cpu_backend(1);
  // Source: conv as the target's, fc1 with 16 outputs, fc2 with 3, and an extra layer.
  Graph sg = net(16, 3);
  sg.add(ops::linear(2), sg.output(), "extra");
  Model source(sg, *be, 1);
  const fs::path dir = scratch("match");
  save_weights(source, (dir / "src.safetensors").string());

  // Target: the same conv; fc1 with 12 outputs (shape differs), fc2 reading 12 (differs too).
  Model target(net(12, 3), *be, 2), fresh(net(12, 3), *be, 2);
  const TransferReport r = load_matching_weights(target, (dir / "src.safetensors").string());
  EXPECT_EQ(r.source, (dir / "src.safetensors").string());
  EXPECT_EQ(r.matched, (std::vector<std::string>{"conv.weight", "conv.bias", "fc2.bias"}));
  EXPECT_EQ(skip_names(r), (std::vector<std::string>{"fc1.weight: shape 16x64 vs 12x64", "fc1.bias: shape 16 vs 12",
                                                     "fc2.weight: shape 3x16 vs 3x12", "extra.bias: not in model",
                                                     "extra.weight: not in model"}));
  EXPECT_EQ(target.tensor("conv.weight"), source.tensor("conv.weight"));
  EXPECT_EQ(target.tensor("fc2.bias"), source.tensor("fc2.bias"));
  EXPECT_EQ(target.tensor("fc1.weight"), fresh.tensor("fc1.weight"));  // kept its initialisation
  EXPECT_EQ(target.tensor("fc2.weight"), fresh.tensor("fc2.weight"));
  fs::remove_all(dir);
}

TEST(TransferMatching, EqualSizeButTransposedShapeIsNotLoaded) {
  auto be = make_cpu_backend(1);
  Graph a({6, 1, 1}), b({4, 1, 1});
  a.add(ops::linear(4, false), a.input(), "fc");  // weight 4x6
  b.add(ops::linear(6, false), b.input(), "fc");  // weight 6x4: same 24 values
  Model ma(a, *be, 1), mb(b, *be, 2);
  SafetensorsFile f;
  f.tensors["fc.weight"] = {{4, 6}, ma.tensor("fc.weight"), "F32"};
  const auto before = mb.tensor("fc.weight");
  const TransferReport r = match_and_load(mb, f);
  EXPECT_TRUE(r.matched.empty());
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0], (TransferSkip{"fc.weight", "shape 4x6 vs 6x4"}));
  EXPECT_EQ(mb.tensor("fc.weight"), before);
}

TEST(TransferMatching, ModelTensorsMissingFromTheSourceAreReported) {
  auto be = make_cpu_backend(1);
  Model source(net(16, 3), *be, 1);
  SafetensorsFile f;
  f.tensors["conv.weight"] = {{4, 1, 3, 3}, source.tensor("conv.weight"), "F32"};
  Model target(net(16, 3), *be, 2);
  const TransferReport r = match_and_load(target, f);
  EXPECT_EQ(r.matched, (std::vector<std::string>{"conv.weight"}));
  EXPECT_EQ(r.skipped.size(), 5u);
  for (const auto& s : r.skipped) EXPECT_EQ(s.reason, "not in source") << s.name;
}

TEST(TransferMatching, NoMatchingTensorIsAConfigError) {
  auto be = make_cpu_backend(1);
  Model source(net(16, 3), *be, 1);
  const fs::path dir = scratch("nomatch");
  save_weights(source, (dir / "w.safetensors").string());
  Graph other({1, 8, 8});
  other.add(ops::linear(3), other.input(), "head");
  Model target(other, *be, 1);
  EXPECT_THROW(load_matching_weights(target, (dir / "w.safetensors").string()), ConfigError);
  fs::remove_all(dir);
}

TEST(TransferMatching, ReplaceHeadReinitialisesTheLastLayerEvenWhenItFits) {
  auto be = make_cpu_backend(1);
  Model source(net(16, 3), *be, 1);
  const fs::path dir = scratch("head");
  save_weights(source, (dir / "w.safetensors").string());
  Model target(net(16, 3), *be, 2), fresh(net(16, 3), *be, 2);
  EXPECT_EQ(head_node(target.graph()), "fc2");
  const TransferReport r = load_matching_weights(target, (dir / "w.safetensors").string(), true);
  EXPECT_EQ(r.matched, (std::vector<std::string>{"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"}));
  EXPECT_EQ(skip_names(r), (std::vector<std::string>{"fc2.weight: replaced head", "fc2.bias: replaced head"}));
  EXPECT_EQ(target.tensor("fc1.weight"), source.tensor("fc1.weight"));
  EXPECT_EQ(target.tensor("fc2.weight"), fresh.tensor("fc2.weight"));
  fs::remove_all(dir);
}

TEST(TransferMatching, NewClassCountHeadIsSkippedByShapeAndReportedByTrain) {
  const fs::path dir = scratch("newhead");
  TrainSpec src = spec_for(net(16, 3));
  src.epochs = 1;
  src.save_weights = (dir / "src.safetensors").string();
  train(src, data_for(3));
  TrainSpec tgt = spec_for(net(16, 5));
  tgt.epochs = 1;
  tgt.init_from = src.save_weights;
  const TrainResult r = train(tgt, data_for(5));
  EXPECT_EQ(r.transfer.matched, (std::vector<std::string>{"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"}));
  EXPECT_EQ(skip_names(r.transfer),
            (std::vector<std::string>{"fc2.weight: shape 3x16 vs 5x16", "fc2.bias: shape 3 vs 5"}));
  EXPECT_NE(r.transfer.summary().find("fc2.weight: shape 3x16 vs 5x16"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TransferReport, JsonRoundTrip) {
  TransferReport r;
  r.source = "/x/w.safetensors";
  r.matched = {"a.weight", "a.bias"};
  r.skipped = {{"b.weight", "shape 2x3 vs 3x3"}, {"c.weight", "not in model"}};
  r.frozen = {"a.weight"};
  r.unfrozen = {{3, {"a.weight"}}};
  r.lr_mult = 0.25f;
  const TransferReport back = TransferReport::from_json(nlohmann::json::parse(r.to_json().dump()));
  EXPECT_EQ(back.source, r.source);
  EXPECT_EQ(back.matched, r.matched);
  EXPECT_EQ(back.skipped, r.skipped);
  EXPECT_EQ(back.frozen, r.frozen);
  EXPECT_EQ(back.unfrozen, r.unfrozen);
  EXPECT_EQ(back.lr_mult, r.lr_mult);
  EXPECT_THROW(TransferReport::from_json(nlohmann::json::array()), ConfigError);
  EXPECT_TRUE(TransferReport{}.empty());
}

// ---------------------------------------------------------------- freezing

TEST(TransferFreezing, FreezeFirstKeepsTheFirstLayersBitIdenticalWhileTheRestTrain) {
  const fs::path dir = scratch("freezefirst");
  TrainSpec s = spec_for(net(16, 3));
  s.transfer.freeze_first = 2;  // conv and fc1
  s.save_weights = (dir / "w.safetensors").string();
  auto be = make_cpu_backend(1);
  Model before(s.model, *be, s.seed);
  const TrainResult r = train(s, data_for(3));
  Model after(s.model, *be, 0);
  load_weights(after, s.save_weights);
  for (const char* n : {"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"})
    EXPECT_EQ(after.tensor(n), before.tensor(n)) << n;
  for (const char* n : {"fc2.weight", "fc2.bias"}) EXPECT_NE(after.tensor(n), before.tensor(n)) << n;
  EXPECT_EQ(r.transfer.frozen, (std::vector<std::string>{"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"}));
  EXPECT_TRUE(r.transfer.unfrozen.empty());
  fs::remove_all(dir);
}

TEST(TransferFreezing, GradualUnfreezingRule) {
  auto be = make_cpu_backend(1);
  Model m(net(16, 3), *be, 1);
  TransferSpec t;
  t.freeze_first = 3;
  t.unfreeze_after = 2;
  t.unfreeze_every = 2;
  const FreezePlan plan(m, {}, t);
  const std::vector<std::string> all = {"conv.weight", "conv.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  EXPECT_EQ(plan.frozen_at(0), all);
  EXPECT_EQ(plan.frozen_at(1), all);
  const std::vector<std::string> two = {"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"};
  EXPECT_EQ(plan.frozen_at(2), two);  // after 2 epochs the layer nearest the output trains
  EXPECT_EQ(plan.frozen_at(3), two);
  EXPECT_EQ(plan.frozen_at(4), (std::vector<std::string>{"conv.weight", "conv.bias"}));
  EXPECT_TRUE(plan.frozen_at(6).empty());
  EXPECT_TRUE(plan.frozen_at(100).empty());
  EXPECT_EQ(plan.events(4), (std::vector<UnfreezeEvent>{{3, {"fc2.weight", "fc2.bias"}}}));
  EXPECT_EQ(plan.events(10), (std::vector<UnfreezeEvent>{{3, {"fc2.weight", "fc2.bias"}},
                                                         {5, {"fc1.weight", "fc1.bias"}},
                                                         {7, {"conv.weight", "conv.bias"}}}));
  // All at once without unfreeze_every; patterns and freeze_first combine.
  t.unfreeze_every = 0;
  t.freeze_first = 1;
  const FreezePlan once(m, {"fc2.bias"}, t);
  EXPECT_EQ(once.frozen_at(1), (std::vector<std::string>{"conv.weight", "conv.bias", "fc2.bias"}));
  EXPECT_TRUE(once.frozen_at(2).empty());
  EXPECT_EQ(once.apply(m, 0), std::vector<std::string>{});
  EXPECT_TRUE(m.frozen(0));
  EXPECT_FALSE(m.frozen(2));
  EXPECT_EQ(once.apply(m, 2), (std::vector<std::string>{"conv.weight", "conv.bias", "fc2.bias"}));
  EXPECT_FALSE(m.frozen(0));
  // Bad settings.
  TransferSpec bad;
  bad.freeze_first = 4;
  EXPECT_THROW(FreezePlan(m, {}, bad), ConfigError);
  bad.freeze_first = 0;
  EXPECT_THROW(FreezePlan(m, {"nothing*"}, bad), ConfigError);
  bad.unfreeze_every = 1;
  EXPECT_THROW(FreezePlan(m, {}, bad), ConfigError);
}

TEST(TransferFreezing, UnfreezeAfterKTrainsTheFrozenLayersFromEpochKPlusOne) {
  const fs::path dir = scratch("unfreeze");
  TrainSpec s = spec_for(net(16, 3));
  s.epochs = 4;
  s.freeze = {"conv"};
  s.transfer.unfreeze_after = 2;
  s.checkpoint_dir = (dir / "ckpt").string();
  auto be = make_cpu_backend(1);
  Model init(s.model, *be, s.seed);
  const TrainResult r = train(s, data_for(3));
  auto conv_at = [&](int epoch) {
    Model m(s.model, *be, 0);
    char name[32];
    std::snprintf(name, sizeof name, "epoch-%04d", epoch);
    load_weights(m, (dir / "ckpt" / name / "model.safetensors").string());
    return std::pair{m.tensor("conv.weight"), m.tensor("fc1.weight")};
  };
  EXPECT_EQ(conv_at(1).first, init.tensor("conv.weight"));
  EXPECT_EQ(conv_at(2).first, init.tensor("conv.weight"));  // frozen through epoch K = 2
  EXPECT_NE(conv_at(3).first, conv_at(2).first);            // trains in epoch 3
  EXPECT_NE(conv_at(4).first, conv_at(3).first);
  EXPECT_NE(conv_at(1).second, init.tensor("fc1.weight"));  // the rest trained all along
  ASSERT_EQ(r.transfer.unfrozen.size(), 1u);
  EXPECT_EQ(r.transfer.unfrozen[0].epoch, 3);
  EXPECT_EQ(r.transfer.unfrozen[0].params, (std::vector<std::string>{"conv.weight", "conv.bias"}));

  // Resuming from epoch 2 follows the same freezing schedule bit for bit.
  TrainSpec again = s;
  again.checkpoint_dir = (dir / "ckpt2").string();
  again.restore = (dir / "ckpt" / "epoch-0002").string();
  const TrainResult resumed = train(again, data_for(3));
  EXPECT_EQ(resumed.transfer.unfrozen, r.transfer.unfrozen);
  Model a(s.model, *be, 0), b(s.model, *be, 0);
  load_weights(a, (dir / "ckpt" / "epoch-0004" / "model.safetensors").string());
  load_weights(b, (dir / "ckpt2" / "epoch-0004" / "model.safetensors").string());
  EXPECT_EQ(a.state_dict(), b.state_dict());
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- lr multiplier

class LrMultiplier : public ::testing::TestWithParam<std::string> {};

TEST_P(LrMultiplier, ScalesTheFirstUpdateOfEveryOptimizer) {
  // Every kind's first update (no weight decay) is linear in the learning rate, so a multiplier
  // of 0.1 must give a tenth of the step of the same parameter at multiplier 1.
  OptimizerSpec os;
  os.kind = GetParam();
  auto opt = make_optimizer(os);
  // Parameters start at zero so that even AdaDelta's tiny first step is held at full precision.
  std::vector<float> w1(4, 0.0f), w2 = w1, w3 = w1;
  std::vector<float> g = {0.3f, -0.7f, 1.1f, -0.05f}, g2 = g, g3 = g;
  std::vector<ParamRef> refs(3);
  refs[0] = {"full", w1.data(), g.data(), 4};
  refs[1] = {"tenth", w2.data(), g2.data(), 4};
  refs[1].lr_mult = 0.1f;
  refs[2] = {"frozen", w3.data(), g3.data(), 4};
  refs[2].frozen = true;
  refs[2].lr_mult = 0.1f;
  const std::vector<float> w0 = w1;
  opt->step(refs, 1e-2f);
  for (int i = 0; i < 4; ++i) {
    const double full = w1[i] - w0[i], tenth = w2[i] - w0[i];
    ASSERT_NE(full, 0.0) << i;
    EXPECT_NEAR(tenth / full, 0.1, 1e-5) << os.kind << " element " << i;
    EXPECT_EQ(w3[i], w0[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, LrMultiplier, ::testing::ValuesIn(optimizer_kinds()));

TEST(TransferLrMult, ZeroMultiplierKeepsTheLoadedLayersWhileTheNewHeadTrains) {
  const fs::path dir = scratch("lrmult");
  TrainSpec src = spec_for(net(16, 3));
  src.epochs = 1;
  src.save_weights = (dir / "src.safetensors").string();
  train(src, data_for(3));
  TrainSpec tgt = spec_for(net(16, 5));
  tgt.epochs = 2;
  tgt.init_from = src.save_weights;
  tgt.transfer.transfer_lr_mult = 0.0f;
  tgt.save_weights = (dir / "tgt.safetensors").string();
  const TrainResult r = train(tgt, data_for(5));
  EXPECT_EQ(r.transfer.lr_mult, 0.0f);
  auto be = make_cpu_backend(1);
  Model s(src.model, *be, 0), t(tgt.model, *be, 0), fresh(tgt.model, *be, tgt.seed);
  load_weights(s, src.save_weights);
  load_weights(t, tgt.save_weights);
  for (const char* n : {"conv.weight", "conv.bias", "fc1.weight", "fc1.bias"}) EXPECT_EQ(t.tensor(n), s.tensor(n)) << n;
  EXPECT_NE(t.tensor("fc2.weight"), fresh.tensor("fc2.weight"));
  fs::remove_all(dir);
}

TEST(TransferLrMult, SetLrMultTouchesOnlyTheNamedParameters) {
  auto be = make_cpu_backend(1);
  Model m(net(16, 3), *be, 1);
  EXPECT_EQ(set_lr_mult(m, {"conv.weight", "fc1.bias", "not.there"}, 0.5f), 2);
  for (const auto& r : m.param_refs())
    EXPECT_EQ(r.lr_mult, (r.name == "conv.weight" || r.name == "fc1.bias") ? 0.5f : 1.0f) << r.name;
}

// ---------------------------------------------------------------- data

TEST(TransferData, SelectClassesRelabelsInTheGivenOrder) {
  const Dataset d = blobs(200, 10, 3);
  const Dataset s = select_classes(d, {7, 2, 9});
  EXPECT_EQ(s.num_classes, 3);
  int64_t expect = 0;
  for (int64_t i = 0; i < d.n; ++i) expect += d.y[i] == 7 || d.y[i] == 2 || d.y[i] == 9;
  ASSERT_EQ(s.n, expect);
  int64_t j = 0;
  for (int64_t i = 0; i < d.n; ++i) {
    const int k = d.y[i] == 7 ? 0 : d.y[i] == 2 ? 1 : d.y[i] == 9 ? 2 : -1;
    if (k < 0) continue;
    EXPECT_EQ(s.y[j], k);
    EXPECT_EQ(s.x[j * 64 + 5], d.x[i * 64 + 5]);
    ++j;
  }
  EXPECT_THROW(select_classes(d, {}), ConfigError);
  EXPECT_THROW(select_classes(d, {1, 1}), ConfigError);
  EXPECT_THROW(select_classes(d, {10}), ConfigError);
}

TEST(TransferData, TakePerClassKeepsThatManyOfEachClassAndTheRestApart) {
  const Dataset d = blobs(300, 4, 4);
  const auto [chosen, rest] = take_per_class(d, 10, 7);
  EXPECT_EQ(chosen.n, 40);
  EXPECT_EQ(rest.n, 260);
  std::vector<int> count(4, 0);
  for (auto y : chosen.y) ++count[y];
  EXPECT_EQ(count, (std::vector<int>(4, 10)));
  const auto again = take_per_class(d, 10, 7);
  EXPECT_EQ(again.first.x, chosen.x);
  const auto other = take_per_class(d, 10, 8);
  EXPECT_NE(other.first.x, chosen.x);
  const Dataset both = concat(chosen, rest);
  EXPECT_EQ(both.n, 300);
  EXPECT_EQ(both.x.size(), d.x.size());
  EXPECT_THROW(take_per_class(d, 0, 1), ConfigError);
  Dataset odd = blobs(3, 2, 1);
  odd.w = 4;
  odd.h = 16;
  EXPECT_THROW(concat(odd, d), ConfigError);
}

// ---------------------------------------------------------------- files

TEST(TransferSpecFile, ReadsTheTransferKeysAndRefusesBadOnes) {
  const std::string body = R"(
model: {input: [1, 8, 8], nodes: [{op: linear, out: 16, name: fc1}, {op: relu}, {op: linear, out: 5, name: fc2}]}
data: {classes: [5, 6, 7, 8, 9], labels_per_class: 100}
training: {init_from: pre.safetensors, freeze_first: 1, unfreeze_after: 3, unfreeze_every: 2,
           transfer_lr_mult: 0.1, replace_head: true}
pseudo_label: {threshold: 0.9, rounds: 2}
)";
  const TrainSpec s = parse_train_spec(YAML::Load(body), "/cfg/t.yaml");
  EXPECT_EQ(s.data.classes, (std::vector<int>{5, 6, 7, 8, 9}));
  EXPECT_EQ(s.data.labels_per_class, 100);
  EXPECT_EQ(s.init_from, "/cfg/pre.safetensors");
  EXPECT_EQ(s.transfer.freeze_first, 1);
  EXPECT_EQ(s.transfer.unfreeze_after, 3);
  EXPECT_EQ(s.transfer.unfreeze_every, 2);
  EXPECT_FLOAT_EQ(s.transfer.transfer_lr_mult, 0.1f);
  EXPECT_TRUE(s.transfer.replace_head);
  EXPECT_TRUE(s.pseudo_label.enabled);
  EXPECT_DOUBLE_EQ(s.pseudo_label.threshold, 0.9);
  EXPECT_EQ(s.pseudo_label.rounds, 2);
  const std::string model = "model: {input: [4], nodes: [{op: linear, out: 2}]}\n";
  for (const char* bad : {"training: {unfreeze_every: 2}", "training: {freeze_first: -1}",
                          "training: {transfer_lr_mult: -0.5}", "data: {classes: [1, 1]}", "data: {classes: []}",
                          "data: {labels_per_class: 100}\npseudo_label: {threshold: 1.5}",
                          "data: {labels_per_class: 100}\npseudo_label: {rounds: 0}",
                          "pseudo_label: {threshold: 0.9}", "pseudo_label: {thresh: 0.9}"})
    EXPECT_THROW(parse_train_spec(YAML::Load(model + bad), "t.yaml"), ConfigError) << bad;
}

TEST(TransferSpecFile, ExampleFilesRunAtATinyBudget) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string cfg = std::string(KESTREL_SOURCE_DIR) + "/configs/";
  const fs::path dir = scratch("examples");
  TrainSpec pre = load_train_spec(cfg + "transfer/pretrain.yaml");
  EXPECT_EQ(pre.data.classes, (std::vector<int>{0, 1, 2, 3, 4}));
  pre.epochs = 1;
  pre.threads = 1;
  pre.data.subset = 500;
  pre.data.test_subset = 500;
  pre.save_weights = (dir / "pre.safetensors").string();
  const TrainResult p = train(pre);
  EXPECT_TRUE(std::isfinite(p.test_accuracy));

  TrainSpec ft = load_train_spec(cfg + "transfer/finetune.yaml");
  EXPECT_EQ(ft.data.classes, (std::vector<int>{5, 6, 7, 8, 9}));
  EXPECT_TRUE(ft.transfer.replace_head);
  EXPECT_EQ(fs::path(ft.init_from).filename(), "transfer-pretrain.safetensors");
  ft.init_from = pre.save_weights;
  ft.epochs = 1;
  ft.threads = 1;
  ft.data.subset = 1000;
  ft.data.labels_per_class = 20;
  ft.data.test_subset = 500;
  const TrainResult f = train(ft);
  EXPECT_EQ(f.transfer.matched.size(), 4u);
  EXPECT_EQ(skip_names(f.transfer), (std::vector<std::string>{"head.weight: replaced head", "head.bias: replaced head"}));

  TrainSpec ps = load_train_spec(cfg + "transfer/pseudo.yaml");
  EXPECT_TRUE(ps.pseudo_label.enabled);
  ps.epochs = 1;
  ps.threads = 1;
  ps.data.subset = 600;
  ps.data.labels_per_class = 20;
  ps.data.test_subset = 200;
  ps.pseudo_label.rounds = 1;
  const TrainData d = load_train_data(ps);
  EXPECT_EQ(d.train.n, 100);  // 20 of each of the five classes
  EXPECT_EQ(d.unlabeled.n, 500);
  EXPECT_EQ(d.train.num_classes, 5);
  const TrainResult r = train(ps, d);
  ASSERT_EQ(r.pseudo_label.rounds.size(), 1u);
  EXPECT_EQ(r.history.size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kestrel::trainer
