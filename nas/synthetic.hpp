// SyntheticCellScore: a structured architecture-quality function over a cell space (additive edge effects,
// pairwise interactions, evaluation noise) with its exact optimum, and a sequential ask/tell driver over it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nas/cell.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::nas {

struct SyntheticParams {
  double interaction = 0.3;  // sd of each pairwise (edge, edge, op, op) interaction; additive effects have sd 1
  double noise = 0.1;        // sd of the evaluation noise, in units of the true quality's sd over valid cells
};

// What this represents: a seeded random quality function over every cell of a (small) cell space, built so that
// it behaves like accuracy on a real benchmark: (1) additive effects a[edge][op] ~ N(0, 1) plus interactions
// b[e][f][op_e][op_f] ~ N(0, interaction^2) for every pair of edges; (2) cells that compute the same function
// score the same: a cell is scored at the representative of its isomorphism class (the member with the smallest sum of op
// indices, then the smallest index: "none" on dead edges when "none" is op 0), so dead edges do not count;
// (3) valid cells are standardized to mean 0, sd 1, and degenerate cells (zero output) score 1 below the worst
// valid cell; (4) an evaluation adds N(0, noise^2). Higher is better.
// Thread safety: immutable after construction.
class SyntheticCellScore {
 public:
  // Enumerates the space (ConfigError above 5,000,000 cells).
  SyntheticCellScore(std::shared_ptr<const CellSpace> space, uint64_t seed, SyntheticParams p = {});

  const CellSpace& space() const { return *space_; }
  double quality(const Arch& a) const { return table_.at(static_cast<size_t>(space_->index_of(a))); }
  double observe(const Arch& a, tuners::Rng& rng) const { return quality(a) + p_.noise * rng.normal(); }
  double optimum() const { return optimum_; }
  // True quality of every cell, by CellSpace::index_of.
  const std::vector<double>& table() const { return table_; }
  const SyntheticParams& params() const { return p_; }

 private:
  std::shared_ptr<const CellSpace> space_;
  SyntheticParams p_;
  std::vector<double> table_;
  double optimum_ = 0.0;
};

// Runs `tuner` for `evaluations` sequential trials on `score` (one maximized objective "quality", the search space
// of the cell's parameters plus `extra` hyperparameters, which do not affect the score); the noise of trial i is
// drawn from derive_seed(noise_seed, i). Returns the true quality of each evaluated cell, in order.
// `history_out`, when given, receives the trials (to replay or inspect them).
std::vector<double> run_synthetic(tuners::Tuner& tuner, const SyntheticCellScore& score, int evaluations,
                                  uint64_t noise_seed, const std::vector<search::ParamSpec>& extra = {},
                                  std::vector<search::Trial>* history_out = nullptr);

}  // namespace kestrel::nas
