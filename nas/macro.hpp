// MacroSpace: an architecture as a sequence of layers with per-layer choices (type, width, kernel size,
// activation, residual skip) and the depth itself as a choice; layers beyond the chosen depth are inactive.
#pragma once

#include <string>
#include <vector>

#include "nas/arch_space.hpp"

namespace kestrel::nas {

// The spec of a macro space, with the defaults used when a key is absent.
struct MacroSpec {
  std::vector<int64_t> depths{2, 3, 4, 5, 6};
  std::vector<std::string> types{"conv", "sepconv"};  // conv: KxK conv; sepconv: depthwise KxK + pointwise 1x1
  std::vector<int64_t> widths{16, 32, 64};
  std::vector<int64_t> kernels{3, 5};
  std::vector<std::string> activations{"relu", "gelu"};  // also: tanh, leaky_relu, sigmoid
  bool skip = true;        // offer a residual connection per layer (a 1x1 projection when the width changes)
  int reduce_every = 2;    // a 2x2 max pool after every this many layers (while the feature map is >= 4x4)
  std::string prefix = "arch";
  static MacroSpec from_json(const nlohmann::json& j);  // unknown keys or bad values: ConfigError
};

// What this represents: the macro space. Decision 0 is "<prefix>_depth" (one of `depths`); then, for every layer l
// below the largest depth, "<prefix>_l<l>_type", "_width", "_kernel", "_act" and (when skip) "_skip". A layer's
// decisions are active only when depth > l (conditional parameters in the search::SearchSpace).
// Canonical string: one "|type-wW-kK-act[-skip]" group per active layer, closed by "|", e.g.
// "|conv-w32-k3-relu|sepconv-w64-k5-gelu-skip|". Two architectures are isomorphic exactly when their canonical
// strings agree (inactive layers are not part of it). Every well-formed architecture is valid.
// Thread safety: immutable; const methods may be called concurrently.
class MacroSpace : public ArchSpace {
 public:
  explicit MacroSpace(MacroSpec spec);
  static std::shared_ptr<const MacroSpace> from_json(const nlohmann::json& j);

  std::string kind() const override { return "macro"; }
  const MacroSpec& spec() const { return spec_; }
  std::vector<search::ParamSpec> params() const override;
  bool active(const Arch& a, size_t i) const override;
  Validity check(const Arch& a) const override;
  std::string canonical(const Arch& a) const override;
  Arch parse(const std::string& s) const override;
  std::string iso_key(const Arch& a) const override { return canonical(normalize(a)); }
  trainer::Graph compile(const Arch& a, const CompileOptions& o) const override;
  double size() const override;

  int depth(const Arch& a) const { return static_cast<int>(spec_.depths.at(a.at(0))); }

 private:
  size_t per_layer() const { return spec_.skip ? 5 : 4; }
  // Decision index of field f (0 type, 1 width, 2 kernel, 3 act, 4 skip) of layer l.
  size_t at(int l, size_t f) const { return 1 + static_cast<size_t>(l) * per_layer() + f; }
  MacroSpec spec_;
  int max_depth_ = 0;
};

}  // namespace kestrel::nas
