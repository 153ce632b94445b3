// Hyperband (Li et al., JMLR 2018): bracket arithmetic and a budget-owning tuner that runs synchronous successive
// halving inside each bracket, promoting the best configurations as new trials that restore from their parent.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tuners/multifidelity.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// One rung of a bracket: n configurations each run to `budget` (absolute resource units).
struct Rung {
  int64_t n = 0;
  double budget = 0.0;
};

// One bracket of Hyperband: s is the paper's bracket index (s_max = most aggressive, 0 = plain full-budget runs).
struct Bracket {
  int64_t s = 0;
  std::vector<Rung> rungs;
};

// Li et al., Algorithm 1, with R = max_resource / min_resource: s_max = floor(log_eta R), B = (s_max + 1) R, and for
// s = s_max..0: n = ceil(B / R * eta^s / (s + 1)), r = R eta^-s, rung i has n_i = floor(n eta^-i) configurations at
// r_i = r eta^i (times min_resource). Integer arithmetic throughout, so R = 81, eta = 3 gives the paper's table
// exactly. Requires: 0 < min_resource <= max_resource, eta >= 2; throws ConfigError otherwise.
std::vector<Bracket> hyperband_brackets(double min_resource, double max_resource, int64_t eta);

struct HyperbandParams {
  double min_resource = 1.0;   // smallest budget a trial gets (r_min)
  double max_resource = 81.0;  // largest budget (R, in the same units as the evaluator's budget)
  int64_t eta = 3;             // reduction factor: 1/eta of each rung is promoted
  int64_t iterations = 0;      // full Hyperband iterations (all brackets) to run; 0 = until the runner stops
  static HyperbandParams from_json(const nlohmann::json& j, const std::string& owner = "tuner 'hyperband'");
};

// A trial's position in a Hyperband/ASHA schedule, read back from its attributes (nullopt when it has none).
struct RungPosition {
  int64_t bracket = 0;
  int64_t rung = 0;
};
std::optional<RungPosition> rung_position(const Trial& t);
// Integer attribute of a trial, nullopt when absent or not an integer.
std::optional<int64_t> int_attr(const Trial& t, const std::string& key);
// The successful (COMPLETE, finite) trials among `ts`, best first by the first objective; ties by trial number.
std::vector<const Trial*> ranked_by_loss(const History& h, const std::vector<const Trial*>& ts);
// The promoted_from numbers of `rung`'s trials.
std::set<int64_t> promoted_parents(const std::vector<const Trial*>& rung);

// What this represents: Hyperband over the brackets of hyperband_brackets(), bracket b (0, 1, ...) using spec
// b mod (s_max + 1), so iterations cycle s = s_max..0. Inside a bracket, rung i+1 is filled once every trial of rung
// i has finished: its members are the best min(n_{i+1}, successful) of rung i (ties broken by trial number), each
// proposed as a new trial with the same configuration, budget r_{i+1}, attrs bracket, rung, promoted_from and
// restore_from = the parent's number. Failed and pruned trials count as finished but are never promoted.
// When no open bracket can propose (its trials are running), the next bracket is opened, so parallel workers stay
// busy. Everything is derived from the history: resuming mid-bracket repeats the same decisions.
// ask() throws NotReady when `iterations` brackets are all open and some trial is still running, SpaceExhausted when
// they are all finished.
// Thread safety: not thread-safe (Tuner contract).
class HyperbandTuner : public Tuner, public CheckpointUser {
 public:
  HyperbandTuner(HyperbandParams params, uint64_t seed);
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "hyperband"; }
  std::set<int64_t> may_restore(const History& h) const override;
  const std::vector<Bracket>& brackets() const { return brackets_; }

 protected:
  // A new configuration for rung 0 of `bracket` (trial `number`). The default is seeded uniform random sampling
  // (no repeats of rung-0 configurations in a finite space while unseen ones remain); BOHB overrides it.
  virtual Config sample_new(const History& h, int64_t number, int64_t bracket);

  HyperbandParams params_;
  uint64_t seed_;
  std::vector<Bracket> brackets_;

 private:
  struct Plan;  // the history grouped by bracket and rung
  Plan plan(const History& h) const;
};

std::unique_ptr<Tuner> make_hyperband_tuner(const nlohmann::json& params, uint64_t seed);

}  // namespace kestrel::tuners
