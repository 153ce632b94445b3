// BOHB (Falkner et al., ICML 2018): Hyperband whose new configurations come from a TPE-style density-ratio model
// fitted on the largest budget with enough results whose ranking agrees with the full budget's, not uniform draws.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tuners/hyperband.hpp"
#include "tuners/support.hpp"  // rank_agreement

namespace kestrel::tuners {

struct BohbParams {
  HyperbandParams hyperband;           // min_resource, max_resource, eta, iterations
  int64_t min_points_in_model = 0;     // results a budget needs before its model is used; 0 = dimensions + 1
  double top_n_percent = 15.0;         // share of a budget's results that form the "good" density
  int64_t num_samples = 64;            // candidates drawn from the good density; the best l/g ratio wins
  double random_fraction = 1.0 / 3.0;  // share of new configurations drawn uniformly regardless of the model
  double bandwidth_factor = 3.0;       // widens the good density when drawing candidates (exploration)
  double min_bandwidth = 1e-3;         // floor of every kernel bandwidth (unit-cube units)
  // Rank validation of a budget below max_resource (Hyper-Tune, Li et al., VLDB 2022; MFES-HB, AAAI 2021): its
  // model is used only once Kendall's tau between its results and max_resource's results, over configurations
  // observed at both, is at least min_rank_agreement over at least min_rank_pairs pairs. Under independence tau's
  // standard deviation over 10 pairs (5 configurations) is about 0.41, so the defaults ask for a clear agreement.
  // min_rank_pairs 0 with min_rank_agreement -1 trusts every budget (the original BOHB rule).
  int64_t min_rank_pairs = 10;
  double min_rank_agreement = 0.5;
  static BohbParams from_json(const nlohmann::json& j);
};

// What this represents: HyperbandTuner (same brackets, promotions, attrs and resume guarantees) whose rung-0
// configurations are proposed by a kernel density model. Model: the successful trials of the largest budget that
// (1) has at least min_points_in_model + 2 results and (2) is max_resource itself or passes the rank validation of
// BohbParams (the same configuration at two budgets is recognised by SearchSpace::key; repeats are averaged). A low
// budget whose ranking the full budget contradicts (crossing learning curves) is not modelled, and while no
// budget qualifies BOHB proposes exactly what Hyperband would. The model's results, in the space's unit-cube
// encoding, are split into the best top_n_percent ("good", at least min_points_in_model) and the rest ("bad"); one
// product-Gaussian KDE each, bandwidths by Scott's rule. A proposal draws num_samples candidates around good points
// (bandwidth x bandwidth_factor) and keeps the one maximising good/bad density. A random_fraction of proposals, and
// all of them before a budget qualifies, are uniform. Everything is derived from the history (resume-safe).
// Categorical and integer parameters are modelled through their cube coordinates and snapped by decoding (a
// simplification of BOHB's Aitchison-Aitken kernel for categories).
// Thread safety: not thread-safe (Tuner contract).
class BohbTuner : public HyperbandTuner {
 public:
  BohbTuner(BohbParams params, uint64_t seed) : HyperbandTuner(params.hyperband, seed), bohb_(params) {}
  std::string name() const override { return "bohb"; }

 protected:
  Config sample_new(const History& h, int64_t number, int64_t bracket) override;

 private:
  BohbParams bohb_;
};

std::unique_ptr<Tuner> make_bohb_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
