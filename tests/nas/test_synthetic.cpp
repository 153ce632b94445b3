// Tests of the synthetic architecture score: isomorphic cells score alike, the optimum is the table's maximum over
// valid cells, degenerate cells score below every valid one, and different seeds give different functions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "nas/synthetic.hpp"

namespace kestrel::nas {
namespace {

TEST(SyntheticCellScore, IsomorphicCellsScoreAlikeAndDegenerateOnesScoreLowest) {
  auto space = std::make_shared<CellSpace>();
  const SyntheticCellScore score(space, 12);
  std::unordered_map<std::string, double> by_class;
  double worst_valid = 1e300, best_degenerate = -1e300, best_valid = -1e300;
  for (int64_t i = 0; i < 15625; ++i) {
    const Arch a = space->from_index(i);
    const double q = score.quality(a);
    auto [it, fresh] = by_class.emplace(space->iso_key(a), q);
    if (!fresh) EXPECT_DOUBLE_EQ(it->second, q) << space->canonical(a);
    if (space->check(a).valid) {
      worst_valid = std::min(worst_valid, q);
      best_valid = std::max(best_valid, q);
    } else {
      best_degenerate = std::max(best_degenerate, q);
    }
  }
  EXPECT_LT(best_degenerate, worst_valid);
  EXPECT_DOUBLE_EQ(score.optimum(), best_valid);
}

TEST(SyntheticCellScore, SeedsGiveDifferentFunctionsAndNoiseHasTheStatedSpread) {
  auto space = std::make_shared<CellSpace>();
  const SyntheticCellScore a(space, 1), b(space, 2);
  int differ = 0;
  for (size_t i = 0; i < a.table().size(); i += 101) differ += a.table()[i] != b.table()[i];
  EXPECT_GT(differ, 100);
  const Arch x = space->parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|");
  tuners::Rng rng(3);
  double s = 0, s2 = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const double d = a.observe(x, rng) - a.quality(x);
    s += d;
    s2 += d * d;
  }
  const double sd = std::sqrt(s2 / n - (s / n) * (s / n));
  EXPECT_NEAR(sd, a.params().noise, 0.01);
}

}  // namespace
}  // namespace kestrel::nas
