// ArchSpace: the interface every architecture search space implements (decisions, validity, canonical string,
// isomorphism key, encodings, compilation into a trainer graph), and the factory that reads one from JSON.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/space.hpp"
#include "trainer/graph.hpp"
#include "tuners/support.hpp"

namespace kestrel::nas {

// One architecture: a choice index per decision of its space (decision i takes a value in [0, choices(i).size())).
// Decisions that are inactive (a layer beyond the chosen depth) hold 0 after ArchSpace::normalize.
using Arch = std::vector<int>;

// The verdict of ArchSpace::check. `valid` is false for malformed architectures (wrong size, choice out of range)
// and for degenerate ones (the output does not depend on the input); `degenerate` says which of the two it is.
// `dead` lists decisions that cannot change the function (e.g. an edge whose end node never reaches the output).
struct Validity {
  bool valid = true;
  bool degenerate = false;
  std::string reason;
  std::vector<size_t> dead;
};

// How an architecture becomes a trainer model. The cell skeleton (NAS-Bench-201): stem conv3x3(channels) + BN,
// `stages` stages of `cells_per_stage` cells with a reduction block (ReLU, conv3x3 stride 2 doubling the channels,
// BN) between stages, then BN, ReLU, global average pool and a linear classifier. Macro spaces use `reduce_every`
// from their own spec and ignore channels/stages.
struct CompileOptions {
  trainer::Shape input{1, 28, 28};
  int num_classes = 10;
  int channels = 16;
  int cells_per_stage = 1;
  int stages = 3;
  static CompileOptions from_json(const nlohmann::json& j);  // keys as the fields; unknown keys: ConfigError
};

// What this represents: a finite set of architectures described by categorical decisions. Each decision travels
// in a search::Config as one categorical parameter named param_name(i) (the space's prefix + a suffix), so
// architectures mix with ordinary hyperparameters in one sweep and every tuner can read them.
// Thread safety: immutable after construction; all methods are const and may be called concurrently.
class ArchSpace {
 public:
  virtual ~ArchSpace() = default;

  virtual std::string kind() const = 0;  // "cell" or "macro"
  const std::string& prefix() const { return prefix_; }
  size_t num_decisions() const { return names_.size(); }
  const std::string& param_name(size_t i) const { return names_.at(i); }
  const std::vector<search::Value>& choices(size_t i) const { return choices_.at(i); }

  // The categorical parameters of the space (with conditions for decisions that are only sometimes active).
  virtual std::vector<search::ParamSpec> params() const;
  // Whether decision i matters given the others (default: always).
  virtual bool active(const Arch& a, size_t i) const { return true; }

  // Structure checks. Never throws.
  virtual Validity check(const Arch& a) const = 0;
  // Human-readable encoding; parse(canonical(a)) == normalize(a). parse throws ConfigError naming what is wrong.
  virtual std::string canonical(const Arch& a) const = 0;
  virtual Arch parse(const std::string& s) const = 0;
  // Equal for architectures that compute the same function (the space's isomorphism rule).
  virtual std::string iso_key(const Arch& a) const = 0;
  // Equal for every pair of architectures known to compute the same function, possibly coarser than iso_key
  // (default: iso_key).
  virtual std::string function_key(const Arch& a) const { return iso_key(a); }
  // Numeric features for model-based controllers. "onehot": one block per decision (inactive decisions all
  // zero). Spaces may add encodings (cells: "path"); an unknown one throws ConfigError.
  virtual std::vector<double> features(const Arch& a, const std::string& encoding) const;
  virtual std::vector<std::string> encodings() const { return {"onehot"}; }
  // A trainer graph computing the architecture. Requires check(a).valid. Throws ConfigError / TrainError.
  virtual trainer::Graph compile(const Arch& a, const CompileOptions& o) const = 0;

  // ---- shared helpers ----
  // Inactive decisions set to 0 (so equal architectures compare equal).
  Arch normalize(Arch a) const;
  // The config entries of the active decisions.
  search::Config to_config(const Arch& a) const;
  // Reads the decisions from a config (unknown extra keys are ignored). Throws ConfigError for a missing active
  // decision or a value that is not one of its choices.
  Arch from_config(const search::Config& c) const;
  // Uniform draw per decision (normalized); may be invalid (callers reject).
  Arch sample(tuners::Rng& rng) const;
  // Uniform valid (non-degenerate) draw by rejection; ConfigError when 10,000 draws found none.
  Arch sample_valid(tuners::Rng& rng) const;
  // Every single-decision edit of `a` that is valid and computes a different function (different iso_key), in a
  // fixed order. When none differs in function, the valid edits with a different canonical string.
  std::vector<Arch> neighbors(const Arch& a) const;
  // Number of architectures (product of choices over always-active decisions and the per-depth sums; exact).
  virtual double size() const;

 protected:
  void add_decision(std::string name, std::vector<search::Value> choices);
  std::string prefix_ = "arch";

 private:
  std::vector<std::string> names_;
  std::vector<std::vector<search::Value>> choices_;
};

// Reads a space description: {"type": "cell", ...} (nas/cell.hpp) or {"type": "macro", ...} (nas/macro.hpp);
// a missing type means "cell"; an empty object is the NAS-Bench-201 cell space. Throws ConfigError.
std::shared_ptr<const ArchSpace> make_arch_space(const nlohmann::json& spec);

// The parameters a sweep must contain for this space (what the sweep parser adds for a `nas:` section).
std::vector<search::ParamSpec> arch_params(const nlohmann::json& spec);

// Compiles a canonical string (trial attr "arch") of `space` into a trainer graph.
trainer::Graph compile_arch(const ArchSpace& space, const std::string& canonical, const CompileOptions& o);

}  // namespace kestrel::nas
