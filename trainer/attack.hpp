// Adversarial robustness: FGSM and PGD (L-inf, L2) attacks in pixel units on normalized inputs,
// robust accuracy at a list of epsilons with sanity checks, and adversarial training of a batch.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "trainer/data.hpp"
#include "trainer/loss.hpp"
#include "trainer/model.hpp"

namespace kestrel::trainer {

// ---------------------------------------------------------------- input geometry

// What it represents: where a model's inputs live relative to the data's natural units. Models
// see normalized inputs x = (p - mean) / stddev (per channel, or per feature for tables); an
// attack's epsilon, its step size and the valid range [lo, hi] are in the natural (pixel) units
// p, as in PyTorch on unnormalized tensors: epsilon 0.1 is a tenth of the [0, 1] pixel range.
// mean/stddev empty means inputs are used as they are (identity). lo = -inf and hi = +inf turn
// range clipping off (tables). A plain value type.
struct InputDomain {
  std::vector<float> mean, stddev;  // size c (per channel) or c*h*w (per feature); or both empty
  float lo = 0.0f, hi = 1.0f;

  // The domain of data normalized by `norm` (images: pixels in [0, 1]).
  static InputDomain pixels(const Normalizer& norm);
  // No normalization and no clipping.
  static InputDomain unbounded();
};

// ---------------------------------------------------------------- attacks

enum class AttackKind {
  kFgsm,     // one signed-gradient step (Goodfellow et al. 2015); with random_start: Wong et al. 2020
  kPgdLinf,  // projected gradient descent in the L-inf ball (Madry et al. 2018)
  kPgdL2,    // projected gradient descent in the L2 ball (normalized-gradient steps)
};
// "fgsm", "pgd" (L-inf; "pgd_linf" is accepted too), "pgd_l2". parse throws ConfigError.
std::string attack_name(AttackKind kind);
AttackKind parse_attack_kind(const std::string& name);

// The settings of one attack; every length is in pixel units (InputDomain).
// step_size 0 picks the usual default: FGSM epsilon (1.25 * epsilon with random_start, Wong et
// al.), PGD 2.5 * epsilon / steps (Madry et al.). steps is ignored by FGSM.
// random_start: PGD/FGSM start from a uniform point of the L-inf ball (L2: uniform in the L2 ball),
// drawn from (seed, batch offset) so results are reproducible.
struct AttackSpec {
  AttackKind kind = AttackKind::kPgdLinf;
  double epsilon = 0.1;
  int steps = 10;
  double step_size = 0.0;
  bool random_start = false;
  uint64_t seed = 0;
  // requires nothing; returns the step size actually used.
  double effective_step_size() const;
};
// throws ConfigError for epsilon < 0, steps < 1 (PGD), step_size < 0.
void validate(const AttackSpec& spec);

// What it represents: a classifier as an attack sees it: logits, and the gradient of a loss with
// respect to its (normalized) input. Lets tests wrap a model (e.g. to mask its gradient).
// Memory: every pointer is host memory of n samples; implementations stage to their device.
// Thread safety: none.
class AttackTarget {
 public:
  virtual ~AttackTarget() = default;
  virtual int64_t sample_size() const = 0;
  virtual int classes() const = 0;
  // Writes n x classes() logits to out.
  virtual void logits(const float* x, int n, float* out) = 0;
  // Writes d(loss)/dx (n x sample_size()) to grad, the loss being the mean over the batch; its
  // scale does not matter to the attacks (they use signs or normalized directions).
  virtual void input_gradient(const float* x, const int32_t* y, int n, float* grad) = 0;
};

// An AttackTarget over a Model and its Loss. train_mode: run forward passes in training mode
// (BatchNorm batch statistics, Dropout) as some adversarial-training recipes do; evaluation uses
// false. The model and loss must outlive it; batches larger than the planned one re-plan them.
class ModelTarget : public AttackTarget {
 public:
  ModelTarget(Model& model, Loss& loss, bool train_mode = false);
  ~ModelTarget() override;
  ModelTarget(const ModelTarget&) = delete;
  ModelTarget& operator=(const ModelTarget&) = delete;
  int64_t sample_size() const override;
  int classes() const override;
  void logits(const float* x, int n, float* out) override;
  void input_gradient(const float* x, const int32_t* y, int n, float* grad) override;

 private:
  const float* stage(const float* x, int n);
  Model& model_;
  Loss& loss_;
  bool train_mode_;
  float* staging_ = nullptr;  // device copy of the input (null on host backends)
  size_t staging_size_ = 0;
};

// Replaces x (n samples, normalized, host memory) by adversarial examples for labels y.
// ensures: every x'[i] is inside the epsilon ball around x[i] (pixel units, the spec's norm) and
//   inside [domain.lo, domain.hi] (an input already outside the range is not moved further out);
//   epsilon 0 leaves x bit-identical. batch_offset: index of x's first sample in its data set
//   (the random start of sample i depends on (seed, batch_offset + i) only).
void attack_batch(const AttackSpec& spec, AttackTarget& target, const InputDomain& domain,
                  float* x, const int32_t* y, int n, int64_t batch_offset = 0);

// ---------------------------------------------------------------- robustness evaluation

// Accuracy under one attack at one epsilon, with per-class accuracy and confusion matrix
// (confusion[true][predicted] counts).
struct AttackResult {
  std::string attack;  // attack_name()
  double epsilon = 0.0;
  int steps = 0;
  bool random_start = false;
  double accuracy = 0.0;
  int64_t correct = 0, n = 0;
  int64_t flipped = 0;  // samples whose prediction differs from the clean one
  double seconds = 0.0;  // wall time of the attack and its evaluation
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<int64_t>> confusion;
};

// One failed sanity check: a sign of gradient masking (or of a bug in the attack).
struct SanityFlag {
  std::string check;    // "epsilon_zero", "monotone", "pgd_vs_fgsm"
  std::string message;  // what was measured and what was expected
};

// What it represents: the robustness of one model on one data set.
struct RobustnessReport {
  std::string set;  // "validation" | "test" (or whatever the caller named it)
  int64_t n = 0;
  double clean_accuracy = 0.0;
  std::vector<double> per_class_accuracy;         // clean
  std::vector<std::vector<int64_t>> confusion;    // clean, [true][predicted]
  std::vector<AttackResult> results;              // in the order they were run
  std::vector<SanityFlag> flags;                  // empty when every check passed
  double noise = 0.0;                             // the margin the checks allowed

  // Accuracy under attack `attack` (attack_name) at epsilon (matched to 1e-9); NaN when absent.
  double robust_accuracy(const std::string& attack, double epsilon) const;
  // Flat metrics for a trial record: clean_accuracy, robust_accuracy_<attack>_<eps> for every
  // result (metric_name), and robustness_flags (the number of failed checks).
  std::vector<std::pair<std::string, double>> metrics() const;
  // The whole report as a JSON object (text).
  std::string to_json(int indent = -1) const;
};
// "robust_accuracy_pgd_0.1": attack name and epsilon in shortest %g form.
std::string metric_name(const std::string& attack, double epsilon);

// What to evaluate. Every attack in `attacks` runs at every epsilon (its own epsilon is
// ignored); with include_zero, epsilon 0 is added for the epsilon-zero check.
// noise: the margin of the monotone and PGD-vs-FGSM checks in accuracy units; 0 = automatic,
// two standard errors of a proportion at p = 0.5 (1 / sqrt(n)).
struct RobustnessSpec {
  bool enabled = false;
  std::vector<double> epsilons = {0.05, 0.1};
  std::vector<AttackSpec> attacks = {AttackSpec{AttackKind::kFgsm, 0.0, 1},
                                     AttackSpec{AttackKind::kPgdLinf, 0.0, 10}};
  std::string set = "test";   // test | validation (used by the training loop)
  int64_t max_samples = 0;    // > 0: only the first max_samples samples of the set
  int batch_size = 0;         // 0: the caller's (training) batch size
  bool include_zero = true;
  double noise = 0.0;
};
// throws ConfigError for a negative epsilon, no attacks, a set other than test/validation, or an
// invalid attack.
void validate(const RobustnessSpec& spec);

// Runs clean evaluation and every (attack, epsilon) on data (normalized as the model expects),
// then the sanity checks. Deterministic for a given spec, target and data.
RobustnessReport evaluate_robustness(const RobustnessSpec& spec, AttackTarget& target,
                                     const InputDomain& domain, const Dataset& data,
                                     int batch_size);

// The three checks on a report's results; returns the failures (also what evaluate_robustness
// stores in report.flags). noise as in RobustnessSpec (0 = automatic from report.n).
//  epsilon_zero: at epsilon 0 every attack must give the clean accuracy exactly (the inputs are
//    unchanged, so any difference means a randomized or stateful model, or a bug).
//  monotone: for each attack, accuracy must not rise with epsilon by more than noise, and no
//    attacked accuracy may exceed the clean accuracy by more than noise.
//  pgd_vs_fgsm: at each epsilon, L-inf PGD's accuracy must not exceed FGSM's by more than noise.
std::vector<SanityFlag> check_sanity(const RobustnessReport& report, double noise = 0.0);

// ---------------------------------------------------------------- adversarial training

// Adversarial training: each training batch is replaced (in whole or in part) by adversarial
// examples of the current model before the forward pass. PGD training (Madry et al.): attack
// kind pgd with random_start; fast FGSM training (Wong et al. 2020): kind fgsm, random_start,
// step_size 1.25 * epsilon (the default). epsilon ramps linearly from 0 over warmup_epochs.
struct AdversarialTraining {
  bool enabled = false;
  AttackSpec attack{AttackKind::kFgsm, 0.1, 1, 0.0, true};
  double fraction = 1.0;    // share of each batch that is attacked (the first samples of it)
  int warmup_epochs = 0;    // epsilon ramp length; 0 = full epsilon from the start
  bool train_mode = false;  // attack with the model in training mode (BatchNorm batch statistics)
  // The epsilon used at (fractional) epoch e = epoch + batch / batches.
  double epsilon_at(double epoch) const;
};
// throws ConfigError for fraction outside (0, 1], warmup_epochs < 0 or an invalid attack.
void validate(const AdversarialTraining& spec);

// Perturbs a training batch in place: x (host, normalized, n samples), labels y. epoch is
// fractional (for the ramp); step: the global step (seeds the random start). Leaves the model's
// parameters and their frozen flags unchanged; it runs forward/backward passes (with every
// parameter frozen, so only input gradients are computed), after which parameter gradients read
// zero (the training loop's own backward comes after). In train_mode BatchNorm running statistics
// and the dropout counter advance as in any training forward.
void adversarial_batch(const AdversarialTraining& spec, Model& model, Loss& loss,
                       const InputDomain& domain, float* x, const int32_t* y, int n,
                       double epoch, int64_t step);

// ---------------------------------------------------------------- YAML

// Readers of the `adversarial:` and `robustness:` sections of a training file (docs/robustness.md).
// throw ConfigError naming file, line and key.
AdversarialTraining parse_adversarial(const YAML::Node& node, const std::string& file);
RobustnessSpec parse_robustness(const YAML::Node& node, const std::string& file);

}  // namespace kestrel::trainer
