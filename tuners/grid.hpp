// GridTuner: exhaustive search of a finite space, every distinct configuration once, in a seeded shuffled order
// (so a sweep cut short still covers the space evenly), skipping configurations already in the history.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

struct GridParams {
  bool shuffle = true;            // false: enumerate in the space's natural order (first parameter slowest)
  int64_t max_configs = 2000000;  // refuse larger grids (ConfigError) rather than exhaust memory
  static GridParams from_json(const nlohmann::json& j);
};

// What this represents: the list of all configurations of the space in an order fixed by the seed; ask() returns
// the first one whose key is not in the history (running and failed trials included).
// Throws ConfigError for a space with a continuous parameter (naming it) and SpaceExhausted when all are taken.
// Thread safety: not thread-safe (Tuner contract). The order is cached per space (a pure function of seed + space).
class GridTuner : public Tuner {
 public:
  GridTuner(GridParams params, uint64_t seed) : params_(params), seed_(seed) {}
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "grid"; }

 private:
  GridParams params_;
  uint64_t seed_;
  const SearchSpace* cached_space_ = nullptr;
  std::string cached_signature_;
  std::vector<Config> order_;
  std::vector<std::string> keys_;
};

std::unique_ptr<Tuner> make_grid_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
