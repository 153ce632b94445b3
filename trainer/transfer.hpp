// Transfer learning for the trainer: weights loaded from another run matched by tensor name and
// shape (with a report of what matched and why the rest was skipped), freezing the first N layers,
// gradual unfreezing, and the learning-rate multiplier of the transferred parameters.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace kestrel::trainer {

class Graph;
class Model;
struct SafetensorsFile;

// Settings of a fine-tuning run (the `training:` keys of docs/model-file.md beside init_from and
// freeze). Defaults change nothing.
//   freeze_first    freeze every parameter of the first N parametrised nodes in graph order
//                   (the nodes that own a weight: Linear, Conv2d, BatchNorm with affine).
//   unfreeze_after  K > 0: the layers frozen by `freeze` or `freeze_first` train again from the
//                   epoch after the K-th (epochs are counted from 1: epochs 1..K frozen, K+1 on
//                   trainable). 0 = frozen for the whole run.
//   unfreeze_every  M > 0 (with unfreeze_after K): gradual unfreezing, one frozen layer at a time,
//                   the one nearest the output first (ULMFiT's order): after K epochs the last
//                   frozen layer trains, after K + M the last two, after K + 2M the last three, ...
//                   0 = all frozen layers at once after K epochs.
//   transfer_lr_mult  the learning rate of each parameter that init_from loaded is multiplied by
//                   this (e.g. 0.1: the pretrained body moves slowly, the new head at full rate).
//   replace_head    the output layer (the last parametrised node) is never loaded from init_from,
//                   even when its shape fits: a new task with the same number of classes gets a
//                   freshly initialised head. A head whose shape differs is skipped anyway.
struct TransferSpec {
  int freeze_first = 0;
  int unfreeze_after = 0;
  int unfreeze_every = 0;
  float transfer_lr_mult = 1.0f;
  bool replace_head = false;
};

// One tensor that was not loaded, and why. reason is one of
//   "shape 10x128 vs 5x128"  (the source's shape, then the model's)
//   "not in source"          (the model has it, the source file does not)
//   "not in model"           (the source file has it, the model does not)
//   "replaced head"          (replace_head: the output layer keeps its initialisation)
struct TransferSkip {
  std::string name;
  std::string reason;
  bool operator==(const TransferSkip&) const = default;
};

// Layers made trainable at the start of an epoch by gradual unfreezing.
struct UnfreezeEvent {
  int epoch = 0;                    // 1-based: the first epoch that trains them
  std::vector<std::string> params;  // parameter names, graph order
  bool operator==(const UnfreezeEvent&) const = default;
};

// What it represents: the outcome of init_from and of the freezing settings for one run, stored
// with the trial (to_json) and printed by `kestrel train` (summary).
// matched and skipped cover parameters and BatchNorm running statistics; matched is in model
// order, skipped lists the model's tensors first (model order), then the source's extra ones
// (name order). A plain value type.
struct TransferReport {
  std::string source;                  // the weights file init_from resolved to; empty: no init_from
  std::vector<std::string> matched;    // loaded from source (name and shape equal)
  std::vector<TransferSkip> skipped;   // not loaded, with the reason
  std::vector<std::string> frozen;     // parameters frozen at the start of training
  std::vector<UnfreezeEvent> unfrozen; // gradual unfreezing, in order (only events that happened)
  float lr_mult = 1.0f;                // transfer_lr_mult applied to the matched parameters

  bool empty() const { return source.empty() && frozen.empty(); }
  // {"source": ..., "matched": [names], "skipped": [{"name", "reason"}], "frozen": [names],
  //  "unfrozen": [{"epoch", "params"}], "lr_mult": x}
  nlohmann::json to_json() const;
  // Inverse of to_json (missing keys keep their defaults). throws ConfigError on a wrong type.
  static TransferReport from_json(const nlohmann::json& j);
  // A few lines for people: counts, every skipped tensor with its reason, frozen layers.
  std::string summary() const;
};

// The file init_from names: a safetensors file as is; a checkpoint folder stands for its
// model.safetensors; a checkpoint_dir (with a `latest` file) for its latest checkpoint's.
std::string resolve_weights_file(const std::string& init_from);

// Loads into model every tensor of source whose name and shape equal the model's, except those in
// exclude (which are reported as "replaced head"). Loads nothing else.
// returns the report (source left empty for the caller to fill).
TransferReport match_and_load(Model& model, const SafetensorsFile& source,
                              const std::set<std::string>& exclude = {});
// The same from a file (init_from: resolve_weights_file first). replace_head excludes the head.
// throws DataError for an unreadable file, ConfigError when no tensor matches (names or shapes
// all differ: almost certainly the wrong file).
TransferReport load_matching_weights(Model& model, const std::string& init_from, bool replace_head = false);

// Names of the nodes that own parameters, in graph order.
std::vector<std::string> parametrised_nodes(const Graph& graph);
// The output layer for replace_head: the last parametrised node in graph order ("" when none).
std::string head_node(const Graph& graph);

// Multiplies the learning rate of the named parameters by mult (ParamRef::lr_mult); buffer names
// (running statistics) are ignored. returns how many parameters were changed.
int set_lr_mult(Model& model, const std::vector<std::string>& names, float mult);

// What it represents: which parameters are frozen in which epoch, from the `freeze` patterns,
// freeze_first and the unfreezing rule of TransferSpec. The frozen set of an epoch is a pure
// function of the epoch, so a resumed run freezes exactly as the uninterrupted one.
// Thread safety: none (belongs to one training loop).
class FreezePlan {
 public:
  // throws ConfigError for a pattern that matches no parameter, freeze_first larger than the
  // number of parametrised nodes, or negative settings.
  FreezePlan(const Model& model, const std::vector<std::string>& patterns, const TransferSpec& spec);

  // Parameters (names, graph order) frozen while training epoch (0-based).
  std::vector<std::string> frozen_at(int epoch) const;
  // Sets the model's frozen flags for epoch (0-based). returns the parameters that this call made
  // trainable (empty when nothing changed).
  std::vector<std::string> apply(Model& model, int epoch) const;
  // The releases among the first `epochs` epochs (those a run trained), in order: what
  // TransferReport::unfrozen lists, also for a run resumed after the release.
  std::vector<UnfreezeEvent> events(int epochs) const;
  bool empty() const { return groups_.empty(); }

 private:
  // Frozen parameters grouped by node, in graph order; gradual unfreezing releases whole groups
  // from the back.
  std::vector<std::vector<std::string>> groups_;
  int unfreeze_after_ = 0;
  int unfreeze_every_ = 0;
};

}  // namespace kestrel::trainer
