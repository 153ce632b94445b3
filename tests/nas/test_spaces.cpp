// Tests of the architecture spaces: cell enumeration and the NAS-Bench-201 isomorphism count, encodings and their
// round trips, validity, single-edit neighbours, the macro space's conditional decisions.
#include <gtest/gtest.h>

#include <set>
#include <unordered_map>
#include <unordered_set>

#include "common/error.hpp"
#include "nas/cell.hpp"
#include "nas/macro.hpp"
#include "search/space.hpp"

namespace kestrel::nas {
namespace {

TEST(CellSpace, NasBench201HasFifteenThousandSixHundredTwentyFiveCellsAndSixThousandFourHundredSixtySixFunctions) {
  const CellSpace space;
  const auto cells = space.enumerate();
  EXPECT_EQ(cells.size(), 15625u);
  std::unordered_set<std::string> canon, iso;
  for (const auto& a : cells) {
    canon.insert(space.canonical(a));
    iso.insert(space.iso_key(a));
  }
  EXPECT_EQ(canon.size(), 15625u);
  EXPECT_EQ(iso.size(), 6466u);
}

TEST(CellSpace, CanonicalStringHasTheNasBench201FormAndRoundTrips) {
  const CellSpace space;
  const std::string s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
  const Arch a = space.parse(s);
  EXPECT_EQ(a, (Arch{3, 3, 4, 1, 3, 1}));
  EXPECT_EQ(space.canonical(a), s);
  for (int64_t i = 0; i < 15625; i += 97) {
    const Arch b = space.from_index(i);
    EXPECT_EQ(space.parse(space.canonical(b)), b);
    EXPECT_EQ(space.index_of(b), i);
    EXPECT_EQ(space.from_config(space.to_config(b)), b);
  }
}

TEST(CellSpace, ParseRefusesMalformedStrings) {
  const CellSpace space;
  EXPECT_THROW(space.parse("|nor_conv_3x3~0|"), ConfigError);
  EXPECT_THROW(space.parse("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"), ConfigError);
  EXPECT_THROW(space.parse("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"), ConfigError);
}

TEST(CellSpace, IsomorphicCellsShareAKeyAndDifferentFunctionsDoNot) {
  const CellSpace space;
  // skip then conv == conv then skip (identity commutes with the op on a path).
  const Arch a = space.parse("|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|");
  const Arch b = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|");
  EXPECT_EQ(space.iso_key(a), space.iso_key(b));
  // Node 2 never reaches the output, so its edges do not matter.
  const Arch c = space.parse("|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|");
  EXPECT_EQ(space.iso_key(a), space.iso_key(c));
  const Arch d = space.parse("|skip_connect~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|");
  EXPECT_NE(space.iso_key(a), space.iso_key(d));
}

TEST(CellSpace, FunctionKeyAlsoMergesSkipsFromZeroNodes) {
  const CellSpace space;
  // Node 2 is zero in both; a skip from it adds nothing, like "none".
  const Arch a = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|");
  const Arch b = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|");
  EXPECT_NE(space.iso_key(a), space.iso_key(b));  // the NAS-Bench-201 rule keeps them apart
  EXPECT_EQ(space.function_key(a), space.function_key(b));
  std::unordered_set<std::string> iso, fn;
  for (const auto& c : space.enumerate()) {
    iso.insert(space.iso_key(c));
    fn.insert(space.function_key(c));
    // function_key is coarser: cells equal under iso_key stay equal.
  }
  EXPECT_LT(fn.size(), iso.size());
  std::unordered_map<std::string, std::string> iso_to_fn;
  for (const auto& c : space.enumerate()) {
    auto [it, fresh] = iso_to_fn.emplace(space.iso_key(c), space.function_key(c));
    if (!fresh) EXPECT_EQ(it->second, space.function_key(c));
  }
  RecordProperty("function_classes", static_cast<int>(fn.size()));
}

TEST(CellSpace, DegenerateCellsAreReportedAndDeadEdgesListed) {
  const CellSpace space;
  const Validity v = space.check(space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"));
  EXPECT_FALSE(v.valid);
  EXPECT_TRUE(v.degenerate);
  EXPECT_NE(v.reason.find("not reachable"), std::string::npos);
  const Validity w = space.check(space.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"));
  EXPECT_TRUE(w.valid);
  // Edge 2<-0 ends at node 2, which does not reach the output.
  EXPECT_NE(std::find(w.dead.begin(), w.dead.end(), size_t{1}), w.dead.end());
  EXPECT_NE(std::find(w.dead.begin(), w.dead.end(), size_t{0}), w.dead.end());
  EXPECT_EQ(std::find(w.dead.begin(), w.dead.end(), size_t{3}), w.dead.end());
  EXPECT_FALSE(space.check(Arch{1, 2}).valid);
  EXPECT_FALSE(space.check(Arch{0, 0, 0, 0, 0, 9}).valid);
}

TEST(CellSpace, EveryNeighbourIsOneEditAwayValidAndADifferentFunction) {
  const CellSpace space;
  tuners::Rng rng(7);
  for (int t = 0; t < 300; ++t) {
    const Arch a = space.sample_valid(rng);
    const auto nb = space.neighbors(a);
    ASSERT_FALSE(nb.empty());
    for (const Arch& b : nb) {
      int diff = 0;
      for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
      EXPECT_EQ(diff, 1);
      EXPECT_TRUE(space.check(b).valid);
      EXPECT_NE(space.iso_key(b), space.iso_key(a));
    }
  }
}

TEST(CellSpace, ParamsFormASearchSpaceWhoseConfigsDecodeToCells) {
  const CellSpace space;
  const search::SearchSpace ss(space.params());
  EXPECT_EQ(ss.size(), 6u);
  EXPECT_EQ(ss.cardinality(), 15625);
  EXPECT_TRUE(ss.index_of("arch_3_2").has_value());
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    const search::Config c = ss.sample(rng);
    EXPECT_EQ(space.to_config(space.from_config(c)), c);
  }
}

TEST(CellSpace, PathEncodingCountsInputToOutputPaths) {
  const CellSpace space;
  const auto f = space.features(space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"), "path");
  EXPECT_EQ(f.size(), 4u + 16u + 64u);
  double paths = 0;
  for (double x : f) paths += x;
  EXPECT_EQ(paths, 2.0);  // 0->3 and 0->1->3
  EXPECT_THROW(space.features(Arch(6, 1), "nope"), ConfigError);
}

TEST(CellSpace, RefusesUnknownOpsAndKeys) {
  EXPECT_THROW(CellSpace(4, {"none", "conv9"}), ConfigError);
  EXPECT_THROW(CellSpace(1), ConfigError);
  EXPECT_THROW(make_arch_space(nlohmann::json{{"type", "cell"}, {"nodez", 4}}), ConfigError);
  EXPECT_THROW(make_arch_space(nlohmann::json{{"type", "tree"}}), ConfigError);
  EXPECT_EQ(make_arch_space(nlohmann::json::object())->num_decisions(), 6u);
  EXPECT_EQ(make_arch_space(nlohmann::json{{"nodes", 5}})->num_decisions(), 10u);
}

TEST(MacroSpace, DepthMakesLaterLayersInactiveAndCanonicalRoundTrips) {
  const auto space = MacroSpace::from_json({{"depths", {2, 3}}, {"widths", {8, 16}}});
  const search::SearchSpace ss(space->params());
  std::mt19937_64 rng(3);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const search::Config c = ss.sample(rng);
    const Arch a = space->from_config(c);
    EXPECT_TRUE(space->check(a).valid);
    const std::string s = space->canonical(a);
    EXPECT_EQ(space->parse(s), a);
    EXPECT_EQ(space->to_config(a), c);
    seen.insert(s);
    const int layers = static_cast<int>(std::count(s.begin(), s.end(), '|')) - 1;
    EXPECT_EQ(layers, space->depth(a));
  }
  EXPECT_GT(seen.size(), 150u);
  // 2 types x 2 widths x 2 kernels x 2 activations x 2 skip = 32 per layer.
  EXPECT_DOUBLE_EQ(space->size(), 32.0 * 32 + 32.0 * 32 * 32);
  EXPECT_THROW(space->parse("|conv-w8-k3-relu|"), ConfigError);  // depth 1 is not offered
  EXPECT_THROW(MacroSpace::from_json({{"kernels", {2}}}), ConfigError);
}

TEST(MacroSpace, NeighboursChangeOneDecisionAndTheArchitecture) {
  const auto space = MacroSpace::from_json(nlohmann::json::object());
  tuners::Rng rng(5);
  for (int t = 0; t < 50; ++t) {
    const Arch a = space->sample_valid(rng);
    for (const Arch& b : space->neighbors(a)) EXPECT_NE(space->canonical(b), space->canonical(a));
  }
}

}  // namespace
}  // namespace kestrel::nas
