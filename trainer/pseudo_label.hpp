// Pseudo-labeling (self-training): a teacher model labels unlabeled samples, the confident ones join
// the training set with the predicted label, and a student trained on both becomes the next teacher.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "trainer/data.hpp"

namespace kestrel::trainer {

class Model;
struct TrainSpec;
struct TrainData;
struct TrainResult;
struct TrainCallbacks;

// The `pseudo_label:` section of a training file (docs/model-file.md). Unlabeled samples come from
// TrainData::unlabeled (the training images that data.labels_per_class left out).
//   threshold  a prediction joins the training set when its softmax probability is >= threshold.
//   rounds     how many students are trained on labeled + pseudo-labeled data; each student
//              labels the unlabeled set afresh for the next (the student becomes the teacher).
//   max_per_class  > 0: of the accepted samples keep at most this many per predicted class, the
//              most confident ones (keeps one easy class from flooding the training set, and
//              bounds the students' cost). 0 = no cap.
//   teacher    weights of the first teacher (a safetensors file, a checkpoint folder or a
//              checkpoint_dir, for the same model); empty: the first teacher is trained on the
//              labeled data alone with this very spec (one training run more).
// Each run (teacher and every student) trains spec.epochs epochs from the same initialisation
// (init_from applies to each), so rounds = R costs R + 1 runs without a teacher file, R with.
struct PseudoLabelSpec {
  bool enabled = false;
  double threshold = 0.95;
  int rounds = 1;
  int64_t max_per_class = 0;
  std::string teacher;
};

// The accepted pseudo-labels of one labeling pass.
// data: the accepted samples with the teacher's predicted labels (same c, h, w, num_classes as the
// unlabeled set); index: each accepted sample's position in the unlabeled set; confidence: its
// softmax probability.
struct PseudoLabels {
  Dataset data;
  std::vector<int64_t> index;
  std::vector<float> confidence;
};

// Labels every sample of unlabeled with model (evaluation mode, batches of batch samples) and
// keeps those whose largest softmax probability of the model's outputs is >= threshold.
// requires: unlabeled's sample size equals the model's input size; 0 <= threshold <= 1.
// ensures: ties between equal largest outputs go to the lower class; unlabeled.y is not read.
// throws ConfigError when the requirements fail.
PseudoLabels label_confident(Model& model, const Dataset& unlabeled, double threshold, int batch = 256);

// Keeps at most max_per_class samples of each label in labels, those of highest confidence (ties:
// the earlier sample), in their original order. max_per_class <= 0 keeps everything.
PseudoLabels cap_per_class(const PseudoLabels& labels, int64_t max_per_class);

// One round: the teacher's labeling and the student trained on it.
// pseudo_accuracy compares the accepted labels with the unlabeled set's true labels, which a
// benchmark knows (the "unlabeled" images are labeled ones with the labels withheld); NaN when
// the unlabeled set has no labels. It is a diagnostic only; training never reads those labels.
struct PseudoLabelRound {
  int round = 0;                 // 1-based
  int64_t unlabeled = 0;         // samples the teacher labeled
  int64_t accepted = 0;          // of those, at or above the threshold
  double mean_confidence = std::numeric_limits<double>::quiet_NaN();  // of the accepted
  double pseudo_accuracy = std::numeric_limits<double>::quiet_NaN();
  std::vector<int64_t> per_class;  // accepted per predicted class
  double student_val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double student_test_accuracy = std::numeric_limits<double>::quiet_NaN();
};

// What it represents: what pseudo-labeling did in one run (stored with the trial, printed by
// `kestrel train`). Empty (no rounds) when pseudo-labeling was off.
struct PseudoLabelReport {
  double threshold = 0.0;
  std::string teacher;  // the teacher file, or "trained" when the first teacher was trained here
  double teacher_test_accuracy = std::numeric_limits<double>::quiet_NaN();  // trained teacher only
  std::vector<PseudoLabelRound> rounds;

  bool empty() const { return rounds.empty(); }
  nlohmann::json to_json() const;
  std::string summary() const;
};

// The whole procedure for train() when spec.pseudo_label.enabled: teacher (trained or loaded),
// then spec.pseudo_label.rounds students. The result is the last student's, with the history of
// every run in order (epochs numbered on across runs, so callbacks see increasing epochs), the
// report in TrainResult::pseudo_label, and the last student's weights in spec.save_weights.
// throws ConfigError when there is no unlabeled data, for restore (a multi-run procedure cannot
// resume from one checkpoint), or for bad settings; otherwise what train() throws.
TrainResult train_with_pseudo_labels(const TrainSpec& spec, const TrainData& data, const TrainCallbacks& callbacks);

}  // namespace kestrel::trainer
