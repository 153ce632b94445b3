// GridTuner: enumerate once, shuffle with the seed (Fisher-Yates over our portable RNG), then take the first
// configuration the history has not seen. Cost per ask is one pass over the history plus a scan of the order.
#include "tuners/grid.hpp"

#include <unordered_set>

#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

GridParams GridParams::from_json(const nlohmann::json& j) {
  GridParams p;
  ParamReader r("tuner 'grid'", j);
  r.get("shuffle", p.shuffle);
  r.get("max_configs", p.max_configs);
  r.finish();
  r.require(p.max_configs > 0, "max_configs", "must be > 0");
  return p;
}

namespace {

// Identifies a space by content, so a cached order is never reused for a different space at the same address.
std::string signature(const SearchSpace& s) {
  std::string sig;
  for (const auto& p : s.params()) {
    sig += p.name + '|' + std::to_string(static_cast<int>(p.kind)) + '|' + std::to_string(p.low) + '|' +
           std::to_string(p.high) + '|' + std::to_string(p.log) + '|' + (p.step ? std::to_string(*p.step) : "") + '|' +
           std::to_string(p.choices.size()) + '|' + (p.condition ? p.condition->parent : "") + ';';
    for (const auto& c : p.choices) sig += search::to_string(c) + ',';
  }
  return sig;
}

}  // namespace

Proposal GridTuner::ask(const History& h, int64_t number) {
  const SearchSpace& space = *h.space;
  std::string sig = signature(space);
  if (cached_space_ != &space || sig != cached_signature_) {
    order_ = enumerate_configs(space, params_.max_configs);
    if (params_.shuffle) {
      Rng rng(derive_seed(seed_, -1, 0x67726964));  // "grid": one stream for the whole order, not per trial
      for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[static_cast<size_t>(rng.below(static_cast<int64_t>(i)))]);
    }
    keys_.clear();
    keys_.reserve(order_.size());
    for (const auto& c : order_) keys_.push_back(space.key(c));
    cached_space_ = &space;
    cached_signature_ = std::move(sig);
  }
  auto seen = seen_keys(h);
  for (size_t i = 0; i < order_.size(); ++i)
    if (!seen.count(keys_[i])) return Proposal{order_[i], {}, std::nullopt};
  throw SpaceExhausted("grid: all " + std::to_string(order_.size()) + " configurations of the space have been proposed");
}

std::unique_ptr<Tuner> make_grid_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<GridTuner>(GridParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
