// RandomTuner: uniform random search over the unit-cube encoding (log parameters uniform in log space),
// seeded per trial number so that proposals do not depend on the order in which workers ask.
#pragma once

#include <memory>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// No options today; the struct exists so that the sweep file's `params:` is validated like every other tuner's.
struct RandomParams {
  static RandomParams from_json(const nlohmann::json& j);
};

// What this represents: independent uniform draws; trial `number` uses the stream derive_seed(seed, number).
// In a finite space a configuration already in the history (any state) is never proposed again; SpaceExhausted
// when none is left. Thread safety: not thread-safe (Tuner contract).
class RandomTuner : public Tuner {
 public:
  RandomTuner(RandomParams params, uint64_t seed) : params_(params), seed_(seed) {}
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "random"; }

 private:
  RandomParams params_;
  uint64_t seed_;
};

std::unique_ptr<Tuner> make_random_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
