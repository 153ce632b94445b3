// Helpers shared by the tuners: a portable seeded RNG, the loss view of a trial, duplicate detection and
// enumeration of finite spaces.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// What this represents: a seeded random stream (splitmix64: fully specified, so the same on every platform and
// standard library, passes BigCrush, and costs nothing to seed, which matters because tuners seed one stream per
// trial or per CMA-ES slot). The std:: distributions are implementation-defined, so draws are made here.
// Thread safety: none (one per call).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t bits() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(bits() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal();                                                             // N(0, 1), Box-Muller
  int64_t below(int64_t n) {  // [0, n); the min guards the product rounding up to n
    return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform() * static_cast<double>(n)));
  }

 private:
  uint64_t state_;
  std::optional<double> spare_;
};

// The value a single-objective tuner minimizes: the first objective, sign-adjusted so that smaller is better.
// nullopt unless the trial is COMPLETE with a finite first value.
std::optional<double> loss_of(const History& h, const Trial& t);

// Agreement of two rankings of the same items: a[i] and b[i] are item i's values under each. Pairs tied in either
// ranking are left out; tau = (concordant - discordant) / pairs counted (0 when none), i.e. Goodman and Kruskal's
// gamma, which equals Kendall's tau when nothing is tied (the usual case for noisy losses). Used by BOHB and
// ASHA to check that a cheap budget ranks configurations like a more expensive one.
// Requires a.size() == b.size(); throws Error otherwise.
struct RankAgreement {
  int64_t pairs = 0;
  double tau = 0.0;
};
RankAgreement rank_agreement(const std::vector<double>& a, const std::vector<double>& b);

// Canonical keys (SearchSpace::key) of every configuration in the history, whatever its state.
std::unordered_set<std::string> seen_keys(const History& h);

// Every distinct configuration of a finite space (inactive parameters dropped), in a fixed order.
// Throws ConfigError naming the first continuous parameter (suggesting `step`), or when there are more than `limit`.
std::vector<Config> enumerate_configs(const SearchSpace& space, int64_t limit);

// Largest finite space that is enumerated to find unseen configurations (beyond it, random retries suffice).
inline constexpr int64_t kEnumerateLimit = 2'000'000;

// A uniformly random configuration not in `seen`. For infinite spaces: just a random one. For finite spaces: random
// retries first, then an enumeration of the unseen ones; nullopt when none is left.
std::optional<Config> random_unseen(const SearchSpace& space, const std::unordered_set<std::string>& seen, Rng& rng);

// Decodes a uniform point of the cube drawn from `rng` (portable replacement for SearchSpace::sample).
Config sample_uniform(const SearchSpace& space, Rng& rng);

}  // namespace kestrel::tuners
