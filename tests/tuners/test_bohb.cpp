// Tests of BOHB: its density-ratio model concentrates new configurations where the results of the largest
// well-observed budget are good, and it falls back to uniform sampling before any budget has enough results.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tuners/bohb.hpp"
#include "tests/tuners/test_hyperband_sim.hpp"

namespace kestrel::tuners {
namespace {

using testing::Sim;

// Median distance to 0.2 of `n` new rung-0 proposals after `history` hand-made results at budget 9.
double median_distance(int history, int n, double random_fraction) {
  Sim sim;
  sim.space = search::SearchSpace({search::ParamSpec::uniform("x", 0, 1)});
  for (int k = 0; k < history; ++k) {
    const double x = (k + 0.5) / history;
    auto& t = sim.add({{"x", x}}, {{"budget", "9"}});  // no bracket attrs: outside Hyperband's schedule
    Sim::complete(t, (x - 0.2) * (x - 0.2));
  }
  BohbTuner tuner(BohbParams::from_json({{"max_resource", 81}, {"random_fraction", random_fraction}}), 4);
  std::vector<double> d;
  for (int k = 0; k < n; ++k) {
    auto& t = sim.ask(tuner);
    EXPECT_EQ(t.attrs.at("rung"), "0");
    d.push_back(std::abs(search::as_double(t.config.at("x")) - 0.2));
  }
  std::sort(d.begin(), d.end());
  return d[d.size() / 2];
}

TEST(BohbTuner, ModelConcentratesProposalsNearTheGoodResults) {
  // Uniform proposals have a median distance of about 0.3 from 0.2; the model's stay near it.
  EXPECT_LT(median_distance(30, 40, 0.0), 0.08);
}

TEST(BohbTuner, TooFewResultsMeanUniformProposals) {
  // 2 results < min_points_in_model (d + 1 = 2) + 2: no model, so proposals spread over [0, 1].
  EXPECT_GT(median_distance(2, 40, 0.0), 0.15);
}

}  // namespace
}  // namespace kestrel::tuners
