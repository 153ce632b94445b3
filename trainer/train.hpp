// The training loop and its top-level API: TrainSpec (what to train, read from YAML), train()
// (epochs, validation, metrics, early stopping, NaN detection, checkpoints, exact resume).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "trainer/attack.hpp"
#include "trainer/data.hpp"
#include "trainer/graph.hpp"
#include "trainer/loss.hpp"
#include "trainer/optim.hpp"
#include "trainer/pseudo_label.hpp"
#include "trainer/schedule.hpp"
#include "trainer/transfer.hpp"

namespace kestrel::trainer {

class Model;

// Where the samples come from. dataset: "fashion_mnist" (dir defaults to Debian's package),
// "mnist" (dir required; same file names), "idx" (the four paths), "csv" (train_path, optional
// test_path, label_column). The validation set is split off the training set (stratified,
// seeded by TrainSpec::seed); subset > 0 keeps that many training samples first (fast trials).
struct DataSpec {
  std::string dataset = "fashion_mnist";
  std::string dir = kFashionMnistDir;
  std::string train_images, train_labels, test_images, test_labels;  // idx
  std::string train_path, test_path, label_column;                   // csv
  double validation_fraction = 0.1;
  int64_t subset = 0;       // 0 = all training samples
  int64_t test_subset = 0;  // 0 = all test samples
  bool normalize = true;    // per-channel (images) / per-feature (csv) statistics of the train part
  Augment augment;
  // Transfer learning and few-label experiments. classes: keep only these classes (training and
  // test sets), relabelled 0..k-1 in the order given (empty = all). labels_per_class > 0: keep that
  // many training samples of each class (seeded; before the validation split); the left-out
  // training samples become TrainData::unlabeled (pseudo-labeling).
  std::vector<int> classes;
  int64_t labels_per_class = 0;
};

// mode "min" (loss) or "max" (accuracy); "auto" picks from the monitored name.
struct EarlyStopping {
  bool enabled = false;
  std::string monitor = "val_loss";  // val_loss | val_accuracy
  int patience = 5;                  // epochs without improvement before stopping
  double min_delta = 0.0;            // an improvement must exceed this
  std::string mode = "auto";
  bool restore_best = true;          // end with the best epoch's weights
};

// Everything one training run needs. Defaults are the benchmark's settings.
struct TrainSpec {
  std::string file;  // the YAML file it came from (messages; relative paths resolve against it)
  Graph model{Shape{1, 28, 28}};
  LossSpec loss;
  DataSpec data;
  OptimizerSpec optimizer;
  float lr = 1e-3f;
  ScheduleSpec schedule;
  bool schedule_per_epoch = false;  // lr_at counts epochs instead of optimizer steps
  int epochs = 10;
  int batch_size = 128;
  uint64_t seed = 0;
  int threads = 0;  // 0 = all cores
  std::string device = "cpu";  // "cpu", or a registered backend such as "cuda:0" (make_backend)
  EarlyStopping early_stopping;
  double target_accuracy = 0.0;  // > 0: report the wall time at which validation reaches it
  std::vector<std::string> freeze;  // parameter names / node names / globs (Model::set_frozen)
  // Weights loaded before training: a safetensors file or a checkpoint folder / checkpoint_dir.
  // Tensors whose name and size fit are loaded, the rest keep their initialisation (transfer
  // learning: a new head); ConfigError when nothing fits. Unlike `restore`, optimizer state, epoch
  // and seed start afresh (PBT exploit, fine-tuning).
  std::string init_from;
  std::string checkpoint_dir;       // non-empty: a checkpoint after every checkpoint_every epochs
  int checkpoint_every = 1;
  // A checkpoint folder (or a checkpoint_dir) to resume from: weights, optimizer, epoch, data
  // position and RNG state. epochs may exceed the checkpoint's (promotion); the learning-rate
  // schedule then spans the new total, so only a constant schedule replays the old steps exactly.
  std::string restore;
  std::string save_weights;         // non-empty: final weights written there (safetensors)
  bool evaluate_test = true;        // test accuracy of the final weights when a test set exists
  TransferSpec transfer;            // freeze_first, gradual unfreezing, lr multiplier, replace_head
  PseudoLabelSpec pseudo_label;     // the `pseudo_label:` section
  // Adversarial robustness (docs/robustness.md): `adversarial:` perturbs every training batch
  // before the forward pass; `robustness:` attacks the final model on the test or validation set.
  AdversarialTraining adversarial;
  RobustnessSpec robustness;
};

// Reads a training file: `model:` (inline) or `model_file:` (path), and the sections data, loss,
// optimizer, schedule, training (docs/model-file.md). throws ConfigError naming file, line and key.
TrainSpec parse_train_spec(const YAML::Node& root, const std::string& file);
TrainSpec load_train_spec(const std::string& path);

struct EpochMetrics {
  int epoch = 0;  // 1-based
  int64_t steps = 0;  // optimizer steps so far
  double lr = 0.0;    // learning rate of the epoch's last step
  double train_loss = 0.0, train_accuracy = 0.0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double samples_per_second = 0.0;  // training samples / training seconds of this epoch
  double epoch_seconds = 0.0;       // training + validation
  double wall_seconds = 0.0;        // since train() started (excluding time before a resume)
};

struct TrainCallbacks {
  // Called after each epoch's validation; returning false stops training (pruning). The run
  // still ends normally (weights, checkpoint, test metrics).
  std::function<bool(const EpochMetrics&)> on_epoch;
  // Progress inside an epoch: (batches done, batches per epoch, running mean loss).
  std::function<void(int64_t, int64_t, double)> on_batch;
  // Called once at the end with the final model (best weights restored, test metrics computed),
  // before train() returns: to use the trained model without a weights file (pseudo-labeling).
  std::function<void(Model&)> on_final_model;
};

struct TrainResult {
  std::vector<EpochMetrics> history;  // all epochs, including those before a resume
  EpochMetrics final_metrics;
  EpochMetrics best;  // best epoch by the early-stopping monitor (val_loss when disabled)
  double test_loss = std::numeric_limits<double>::quiet_NaN();
  double test_accuracy = std::numeric_limits<double>::quiet_NaN();
  double time_to_target = -1.0;  // seconds; -1 when target_accuracy was not reached or not set
  bool stopped_early = false;
  bool stopped_by_callback = false;
  int64_t param_count = 0;
  int64_t flops_per_sample = 0;
  std::string last_checkpoint;  // folder of the last checkpoint written, if any
  TransferReport transfer;        // init_from matching and freezing (empty without them)
  PseudoLabelReport pseudo_label; // rounds of pseudo-labeling (empty when off)
  std::optional<RobustnessReport> robustness;  // when spec.robustness.enabled
};

// The data train() runs on, loaded once (callers that run many trials load it once and pass it).
struct TrainData {
  Dataset train, validation, test;  // validation or test may be empty (n == 0)
  // Training samples left out by data.labels_per_class, normalised like train; their labels are
  // kept for diagnostics only (pseudo-labeling never trains on them). Empty otherwise.
  Dataset unlabeled;
  // Where the normalized inputs live in pixel units (attacks' epsilon and valid range): images
  // [0, 1] with the training set's per-channel statistics; tables unbounded.
  InputDomain domain;
};
// Loads and prepares spec.data: split, subset, normalization. throws DataError / ConfigError.
TrainData load_train_data(const TrainSpec& spec);
// Identifies what load_train_data(spec) loads: every setting it reads (data section, seed,
// evaluate_test). Equal keys give equal data, so callers that cache TrainData can key it by this.
std::string data_key(const TrainSpec& spec);

// Runs one training. Deterministic: the same spec, data and thread count give bit-identical
// weights and metrics (except timings); resuming from a checkpoint continues the same trajectory.
// throws TrainError for a non-finite loss (naming epoch and batch), ConfigError for a bad spec or
// a checkpoint that does not fit, DataError for unreadable data.
TrainResult train(const TrainSpec& spec, const TrainCallbacks& callbacks = {});
TrainResult train(const TrainSpec& spec, const TrainData& data, const TrainCallbacks& callbacks = {});

}  // namespace kestrel::trainer
