// Tests of pseudo-labeling: the confidence threshold on known softmax outputs, the teacher/student
// rounds through train() (report, epoch numbering, callbacks), a teacher loaded from a file, and
// the settings it refuses.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

#include "common/error.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/model.hpp"
#include "trainer/pseudo_label.hpp"
#include "trainer/train.hpp"

namespace kestrel::trainer {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("kestrel_pseudo_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

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

Graph mlp(int classes) {
  Graph g({1, 8, 8});
  int x = g.add(ops::linear(16), g.input(), "fc1");
  x = g.add(ops::relu(), x);
  g.add(ops::linear(classes), x, "fc2");
  return g;
}

// A 3-way "model" whose outputs are its inputs (identity weight, zero bias): each sample is its
// own logits, so every softmax probability is known in closed form.
struct IdentityModel {
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  Graph g{Shape{3, 1, 1}};
  std::unique_ptr<Model> m;
  IdentityModel() {
    g.add(ops::linear(3), g.input(), "fc");
    m = std::make_unique<Model>(g, *be, 1);
    m->set_tensor("fc.weight", {1, 0, 0, 0, 1, 0, 0, 0, 1});
    m->set_tensor("fc.bias", {0, 0, 0});
  }
};

Dataset logits(const std::vector<std::array<float, 3>>& rows) {
  Dataset d;
  d.n = static_cast<int64_t>(rows.size());
  d.c = 3;
  d.h = d.w = 1;
  d.num_classes = 3;
  for (const auto& r : rows) d.x.insert(d.x.end(), r.begin(), r.end());
  d.y.assign(rows.size(), 0);
  return d;
}

double max_softmax(const std::array<float, 3>& l) {
  const double m = std::max({l[0], l[1], l[2]});
  double s = 0;
  for (float v : l) s += std::exp(v - m);
  return 1.0 / s;
}

TEST(PseudoLabel, AcceptsExactlyThePredictionsAtOrAboveTheThreshold) {
  IdentityModel im;
  const std::vector<std::array<float, 3>> rows = {
      {3.0f, 0.0f, 0.0f},   // p = 0.909
      {0.0f, 1.0f, 0.0f},   // p = 0.576
      {0.0f, 0.0f, 2.5f},   // p = 0.859
      {0.2f, 0.1f, 0.0f},   // p = 0.367
      {-1.0f, 4.0f, 0.0f},  // p = 0.978
      {1.0f, 1.0f, -5.0f},  // a tie: class 0, p = 0.499
  };
  const Dataset d = logits(rows);
  for (double threshold : {0.0, 0.5, 0.85, 0.9, 0.95, 1.0}) {
    // batch 4 splits the six samples over two batches, the last one partial.
    const PseudoLabels pl = label_confident(*im.m, d, threshold, 4);
    std::vector<int64_t> expect_idx;
    for (size_t i = 0; i < rows.size(); ++i)
      if (max_softmax(rows[i]) >= threshold) expect_idx.push_back(static_cast<int64_t>(i));
    EXPECT_EQ(pl.index, expect_idx) << "threshold " << threshold;
    ASSERT_EQ(pl.data.n, static_cast<int64_t>(expect_idx.size()));
    for (size_t j = 0; j < expect_idx.size(); ++j) {
      const auto& r = rows[expect_idx[j]];
      const int arg = static_cast<int>(std::max_element(r.begin(), r.end()) - r.begin());
      EXPECT_EQ(pl.data.y[j], arg);
      EXPECT_NEAR(pl.confidence[j], max_softmax(r), 1e-6);
      EXPECT_GE(pl.confidence[j], threshold);
      EXPECT_EQ(pl.data.x[j * 3 + 2], r[2]);  // the sample itself, unchanged
    }
  }
  EXPECT_EQ(label_confident(*im.m, d, 0.0).data.n, 6);
  EXPECT_EQ(label_confident(*im.m, d, 0.9).index, (std::vector<int64_t>{0, 4}));
  EXPECT_THROW(label_confident(*im.m, d, 1.5), ConfigError);
  EXPECT_THROW(label_confident(*im.m, blobs(2, 3, 1), 0.5), ConfigError);  // 64 values, not 3
}

TEST(PseudoLabel, CapPerClassKeepsTheMostConfidentOfEachClassInOrder) {
  IdentityModel im;
  const Dataset d = logits({{3.0f, 0.0f, 0.0f},    // class 0, p 0.909
                            {0.0f, 2.0f, 0.0f},    // class 1, p 0.787
                            {4.0f, 0.0f, 0.0f},    // class 0, p 0.965
                            {0.0f, 0.0f, 1.0f},    // class 2, p 0.576
                            {0.0f, 3.0f, 0.0f},    // class 1, p 0.909
                            {2.0f, 0.0f, 0.0f}});  // class 0, p 0.787
  const PseudoLabels all = label_confident(*im.m, d, 0.0);
  const PseudoLabels one = cap_per_class(all, 1);
  EXPECT_EQ(one.index, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(one.data.y, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_EQ(one.data.n, 3);
  EXPECT_EQ(one.data.x.size(), 9u);
  EXPECT_EQ(one.data.x[0], 4.0f);
  const PseudoLabels two = cap_per_class(all, 2);
  EXPECT_EQ(two.index, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(cap_per_class(all, 0).index, all.index);
}

TrainSpec spec() {
  TrainSpec s;
  s.model = mlp(3);
  s.epochs = 2;
  s.batch_size = 16;
  s.seed = 3;
  s.threads = 1;
  s.lr = 2e-2f;
  s.pseudo_label.enabled = true;
  s.pseudo_label.threshold = 0.8;
  s.pseudo_label.rounds = 2;
  return s;
}

TrainData data() {
  TrainData d;
  const auto parts = take_per_class(blobs(400, 3, 1), 20, 2);
  d.train = parts.first;
  d.unlabeled = parts.second;
  d.validation = blobs(60, 3, 3);
  d.test = blobs(60, 3, 4);
  return d;
}

TEST(PseudoLabel, RoundsTrainStudentsOnLabeledPlusConfidentSamples) {
  const TrainSpec s = spec();
  const TrainData d = data();
  std::vector<int> seen;
  int finals = 0;
  TrainCallbacks cb;
  cb.on_epoch = [&](const EpochMetrics& m) {
    seen.push_back(m.epoch);
    return true;
  };
  cb.on_final_model = [&](Model&) { ++finals; };
  const TrainResult r = train(s, d, cb);
  // Teacher + 2 students, 2 epochs each, numbered on.
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4, 5, 6}));
  ASSERT_EQ(r.history.size(), 6u);
  EXPECT_EQ(r.history.back().epoch, 6);
  EXPECT_EQ(r.final_metrics.epoch, 6);
  EXPECT_EQ(finals, 1);  // the caller sees only the final student
  const PseudoLabelReport& p = r.pseudo_label;
  EXPECT_EQ(p.teacher, "trained");
  ASSERT_EQ(p.rounds.size(), 2u);
  for (const auto& round : p.rounds) {
    EXPECT_EQ(round.unlabeled, d.unlabeled.n);
    EXPECT_GT(round.accepted, 0);
    EXPECT_LE(round.accepted, round.unlabeled);
    EXPECT_GE(round.mean_confidence, 0.8);
    int64_t sum = 0;
    for (auto c : round.per_class) sum += c;
    EXPECT_EQ(sum, round.accepted);
    EXPECT_GT(round.pseudo_accuracy, 0.5);  // the blobs are easy; a broken labeler would not be
  }
  EXPECT_DOUBLE_EQ(p.rounds.back().student_test_accuracy, r.test_accuracy);
  EXPECT_EQ(p.to_json()["rounds"].size(), 2u);
  EXPECT_NE(p.summary().find("round 2"), std::string::npos);
}

TEST(PseudoLabel, TeacherFromAFileLabelsLikeLabelConfident) {
  const fs::path dir = scratch("teacher");
  TrainSpec t = spec();
  t.pseudo_label.enabled = false;
  t.save_weights = (dir / "teacher.safetensors").string();
  const TrainData d = data();
  train(t, d);
  TrainSpec s = spec();
  s.pseudo_label.teacher = t.save_weights;
  s.pseudo_label.rounds = 1;
  const TrainResult r = train(s, d);
  ASSERT_EQ(r.pseudo_label.rounds.size(), 1u);
  EXPECT_EQ(r.pseudo_label.teacher, t.save_weights);
  EXPECT_EQ(r.history.size(), 2u);  // no teacher training
  auto be = make_cpu_backend(1);
  Model teacher(t.model, *be, 0);
  load_weights(teacher, t.save_weights);
  EXPECT_EQ(r.pseudo_label.rounds[0].accepted, label_confident(teacher, d.unlabeled, 0.8).data.n);
  fs::remove_all(dir);
}

TEST(PseudoLabel, RefusesMissingUnlabeledDataAndRestore) {
  TrainSpec s = spec();
  TrainData d = data();
  d.unlabeled = Dataset{};
  EXPECT_THROW(train(s, d), ConfigError);
  TrainSpec r = spec();
  r.restore = "/nonexistent";
  EXPECT_THROW(train(r, data()), ConfigError);
  TrainSpec bad = spec();
  bad.pseudo_label.rounds = 0;
  EXPECT_THROW(train(bad, data()), ConfigError);
}

TEST(PseudoLabel, CallbackStopEndsTheProcedure) {
  TrainSpec s = spec();
  TrainCallbacks cb;
  int calls = 0;
  cb.on_epoch = [&](const EpochMetrics&) { return ++calls < 3; };  // stop in the first student
  const TrainResult r = train(s, data(), cb);
  EXPECT_TRUE(r.stopped_by_callback);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.pseudo_label.rounds.size(), 1u);
}

}  // namespace
}  // namespace kestrel::trainer
