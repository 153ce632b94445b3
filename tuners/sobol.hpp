// SobolTuner: a quasi-random low-discrepancy sequence (Sobol', Joe-Kuo direction numbers) over the unit cube,
// optionally scrambled by a seeded random digital shift. Also used as the start-up design of other tuners.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Number of dimensions with tabulated direction numbers (Joe & Kuo, new-joe-kuo-6.21201, first 32 rows).
inline constexpr size_t kSobolMaxDims = 32;

// Point `index` (0-based, Gray-code order) of the d-dimensional unscrambled Sobol' sequence, as 32-bit integers
// (divide by 2^32 for [0,1)). Requires d <= kSobolMaxDims.
std::vector<uint32_t> sobol_point_bits(uint64_t index, size_t d);
// Same point in [0,1); with `shift` (one 32-bit word per dimension) XORed in and the cell midpoint taken, so that
// coordinates are strictly inside (0,1). Dimensions beyond kSobolMaxDims are left at 0.5 (callers fill them).
std::vector<double> sobol_point(uint64_t index, size_t d, const std::vector<uint32_t>* shift = nullptr);

struct SobolParams {
  bool scramble = true;  // random digital shift drawn from the seed; false gives the textbook sequence from 0
  int64_t skip = 0;      // points skipped at the start of the sequence (e.g. 1 to avoid the all-zeros corner)
  static SobolParams from_json(const nlohmann::json& j);
};

// What this represents: trial `number` gets Sobol point number + skip, so the proposal depends only on the trial
// number (exact on resume, independent of worker order). In a finite space a point whose configuration is already
// in the history is replaced by a seeded random unseen configuration; SpaceExhausted when none is left. Parameters
// beyond the 32nd coordinate are drawn uniformly from derive_seed(seed, number).
// Thread safety: not thread-safe (Tuner contract).
class SobolTuner : public Tuner {
 public:
  SobolTuner(SobolParams params, uint64_t seed);
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "sobol"; }

 private:
  SobolParams params_;
  uint64_t seed_;
  std::vector<uint32_t> shift_;
};

std::unique_ptr<Tuner> make_sobol_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
