// Checkpoints of a training run (docs/checkpoint-format.md): weights and optimizer state as
// safetensors, the loop's position and RNG state as JSON, written atomically into one folder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/data.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"
#include "trainer/train.hpp"

namespace kestrel::trainer {

// Everything besides tensors that a resumed run needs to continue bit for bit.
struct TrainerState {
  int epoch = 0;               // completed epochs
  int64_t steps = 0;           // optimizer steps taken
  BatchLoader::State loader;   // data position (epoch, position within it, seed)
  uint64_t dropout_counter = 0;
  uint64_t seed = 0;
  double best_value = 0.0;     // early-stopping monitor's best value (valid when best_epoch > 0)
  int best_epoch = 0;
  int bad_epochs = 0;
  double time_to_target = -1.0;
  double wall_seconds = 0.0;
  std::vector<EpochMetrics> history;
};

// Writes model weights and buffers to a safetensors file (names as Model::state_dict()).
void save_weights(Model& model, const std::string& path);
// Loads tensors by name into the model. strict: every model tensor must be in the file and every
// file tensor in the model, with equal sizes. Not strict (transfer learning): tensors present in
// both with equal sizes are loaded, the others skipped. returns the number loaded.
// throws DataError (unreadable file) or ConfigError (missing or mismatched tensor when strict).
int load_weights(Model& model, const std::string& path, bool strict = true);

// Writes <dir>/epoch-NNNN/{model.safetensors, optimizer.safetensors, trainer.json[, best.safetensors]}
// through a temporary folder and a rename, then points <dir>/latest at it. best: weights of the
// best epoch kept by early stopping (may be empty). returns the checkpoint folder.
std::string write_checkpoint(const std::string& dir, Model& model, const Optimizer& optimizer,
                             const TrainerState& state,
                             const std::map<std::string, std::vector<float>>& best);
// Reads a checkpoint folder, or the one <dir>/latest names, into model and optimizer; returns its
// state and fills best (empty when the checkpoint has none).
// throws ConfigError when it does not fit the model (names, sizes, optimizer kind) and DataError
// when files are missing or corrupt.
TrainerState read_checkpoint(const std::string& path, Model& model, Optimizer& optimizer,
                             std::map<std::string, std::vector<float>>& best);

}  // namespace kestrel::trainer
