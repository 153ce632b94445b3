// SobolTuner: a quasi-random low-discrepancy sequence (Sobol', Joe-Kuo direction numbers) over the unit cube,
// optionally scrambled (seeded linear matrix scrambling and digital shift). Also used as the start-up design of other tuners.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Number of dimensions with tabulated direction numbers (Joe & Kuo, new-joe-kuo-6.21201, first 32 rows).
inline constexpr size_t kSobolMaxDims = 32;

// Direction numbers V_1..V_32 of each dimension (dimension-major), as 32-bit integers (MSB = first binary digit).
using SobolDirections = std::vector<std::array<uint32_t, 32>>;
// The textbook (Joe-Kuo) direction numbers of the first d dimensions. Requires d <= kSobolMaxDims.
SobolDirections sobol_directions(size_t d);
// A linear matrix scrambling of `base` (each dimension's numbers multiplied by a random lower-triangular binary
// matrix with unit diagonal, drawn from `seed`): still a (t,s)-sequence, but with independent-looking
// randomizations per seed (a digital shift alone moves every seed's points by the same lattice).
SobolDirections scramble_directions(const SobolDirections& base, uint64_t seed);

// Point `index` (0-based, Gray-code order) of the sequence defined by `dirs`, in [0,1)^d. With `shift` (one word per
// dimension) XORed in, the cell midpoint is taken so that coordinates are strictly inside (0,1).
std::vector<double> sobol_point(uint64_t index, const SobolDirections& dirs, const std::vector<uint32_t>* shift = nullptr);
// The unscrambled textbook sequence (first point all zeros). Requires d <= kSobolMaxDims.
std::vector<double> sobol_point(uint64_t index, size_t d);

struct SobolParams {
  bool scramble = true;  // linear matrix scrambling + digital shift drawn from the seed; false: the textbook sequence
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
  SobolDirections dirs_;
  std::vector<uint32_t> shift_;
};

std::unique_ptr<Tuner> make_sobol_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
