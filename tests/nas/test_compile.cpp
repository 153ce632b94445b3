// Tests of compiling architectures into trainer graphs: every valid NAS-Bench-201 cell compiles, random cells and
// macro architectures train a step on tiny data with a finite loss, and the graph follows the cell's structure.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.hpp"
#include "nas/cell.hpp"
#include "nas/macro.hpp"
#include "trainer/train.hpp"

namespace kestrel::nas {
namespace {

trainer::TrainData tiny_data(int c, int hw, int n, int classes) {
  trainer::TrainData d;
  d.train.n = n;
  d.train.c = c;
  d.train.h = d.train.w = hw;
  d.train.num_classes = classes;
  for (int64_t i = 0; i < static_cast<int64_t>(n) * c * hw * hw; ++i)
    d.train.x.push_back(static_cast<float>(std::sin(0.37 * static_cast<double>(i))));
  for (int i = 0; i < n; ++i) d.train.y.push_back(i % classes);
  return d;
}

trainer::TrainResult one_step(const trainer::Graph& g, const trainer::TrainData& data) {
  trainer::TrainSpec spec;
  spec.model = g;
  spec.epochs = 1;
  spec.batch_size = static_cast<int>(data.train.n);  // one optimizer step
  spec.threads = 1;
  spec.evaluate_test = false;
  return trainer::train(spec, data);
}

TEST(Compile, EveryValidNasBench201CellCompilesAndDegenerateOnesAreRefused) {
  const CellSpace space;
  CompileOptions o;
  o.input = {1, 8, 8};
  o.channels = 4;
  int valid = 0, degenerate = 0;
  for (const Arch& a : space.enumerate()) {
    if (space.check(a).valid) {
      const trainer::Graph g = space.compile(a, o);
      EXPECT_EQ(g.output_shape(), (trainer::Shape{10, 1, 1}));
      ++valid;
    } else {
      EXPECT_THROW(space.compile(a, o), ConfigError);
      ++degenerate;
    }
  }
  EXPECT_EQ(valid + degenerate, 15625);
  EXPECT_GT(degenerate, 0);
}

TEST(Compile, RandomCellsTrainOneStepWithAFiniteLoss) {
  const CellSpace space;
  CompileOptions o;
  o.input = {1, 8, 8};
  o.channels = 4;
  o.num_classes = 3;
  o.stages = 2;
  const auto data = tiny_data(1, 8, 6, 3);
  tuners::Rng rng(42);
  for (int i = 0; i < 12; ++i) {
    const Arch a = space.sample_valid(rng);
    const auto r = one_step(space.compile(a, o), data);
    ASSERT_EQ(r.history.size(), 1u);
    EXPECT_EQ(r.history[0].steps, 1);
    EXPECT_TRUE(std::isfinite(r.history[0].train_loss)) << space.canonical(a);
    EXPECT_GT(r.param_count, 0);
  }
}

TEST(Compile, CellGraphFollowsItsEdges) {
  const CellSpace space;
  CompileOptions o;
  o.input = {1, 8, 8};
  o.channels = 4;
  o.stages = 1;
  // Only the conv path reaches the output; the pool edge into node 2 is dead and must not be built.
  const Arch a = space.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_1x1~1|none~2|");
  const trainer::Graph g = space.compile(a, o);
  int convs = 0, pools = 0;
  for (const auto& n : g.nodes()) {
    convs += n.op.kind == trainer::OpKind::kConv2d;
    pools += n.op.kind == trainer::OpKind::kAvgPool;
  }
  EXPECT_EQ(convs, 3);  // stem + two cell convs
  EXPECT_EQ(pools, 0);
  // Skip-only cell: no cell parameters at all beyond stem and head.
  const trainer::Graph s = space.compile(space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"), o);
  EXPECT_LT(s.param_count(), g.param_count());
}

TEST(Compile, MacroArchitecturesTrainOneStep) {
  const auto space = MacroSpace::from_json({{"depths", {1, 2, 3}}, {"widths", {4, 6}}, {"reduce_every", 1}});
  CompileOptions o;
  o.input = {1, 8, 8};
  o.num_classes = 3;
  const auto data = tiny_data(1, 8, 6, 3);
  tuners::Rng rng(3);
  for (int i = 0; i < 8; ++i) {
    const Arch a = space->sample_valid(rng);
    const trainer::Graph g = compile_arch(*space, space->canonical(a), o);
    const auto r = one_step(g, data);
    EXPECT_TRUE(std::isfinite(r.history.at(0).train_loss)) << space->canonical(a);
  }
}

}  // namespace
}  // namespace kestrel::nas
