// Population-based training (Jaderberg et al., 2017): a tuner that trains a population in segments of `interval`
// steps, replacing the worst members by perturbed copies of the best, plus the lineage view (`kestrel pbt-schedule`).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tuners/multifidelity.hpp"
#include "tuners/support.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::tuners {

// Lineage attributes of PBT trials (besides restore_from and budget).
inline constexpr const char* kAttrPbtMember = "pbt.member";          // population slot 0..population-1
inline constexpr const char* kAttrPbtGeneration = "pbt.generation";  // segment index: steps [g*interval, (g+1)*interval)
inline constexpr const char* kAttrPbtDonor = "pbt.donor";            // trial number copied (exploit), when one was
inline constexpr const char* kAttrPbtBefore = "pbt.before";          // the donor's hyperparameters (JSON) before explore

struct PbtParams {
  int64_t population = 8;              // members trained side by side
  double interval = 10.0;              // steps per segment (perturbation interval)
  double total_steps = 100.0;          // a member is done at this budget
  double truncation = 0.25;            // bottom fraction copies the top fraction (at least one member each)
  double resample_probability = 0.25;  // per hyperparameter: resample from the space instead of perturbing
  std::vector<double> perturb_factors{0.8, 1.2};  // perturbation multiplies numeric values by one of these
  std::string mode = "sync";           // "sync": generations in lockstep; "async": each member as soon as it is free
  static PbtParams from_json(const nlohmann::json& j);
};

// What this represents: PBT as a budget-owning tuner. Each trial trains one member for one segment: budget = the
// step the segment ends at ((g+1)*interval, capped by total_steps), restore_from = the trial whose checkpoint it
// starts from (its own previous segment, or the donor's when exploited). At the start of each segment after the
// first, members are ranked by their latest finished segment's value: a member in the bottom `truncation` fraction
// (or whose segment failed) copies a member drawn from the top fraction (weights through restore_from, and its
// hyperparameters) and explores: each numeric hyperparameter is resampled with resample_probability, else
// multiplied by a random perturb factor and clamped to the space; a categorical one is only resampled.
// sync: generation g+1 starts when all of generation g has finished (ask() throws NotReady meanwhile);
// async: the free member furthest behind (then the lowest slot) continues against the latest finished values.
// Random draws are seeded by (seed, generation, member), so resuming mid-generation repeats the same decisions.
// SpaceExhausted once every member reached total_steps. Thread safety: not thread-safe (Tuner contract).
class PbtTuner : public Tuner, public CheckpointUser {
 public:
  PbtTuner(PbtParams params, uint64_t seed);
  Proposal ask(const History& h, int64_t number) override;
  std::string name() const override { return "pbt"; }
  std::set<int64_t> may_restore(const History& h) const override;
  int64_t generations() const { return generations_; }

 private:
  Proposal next_segment(const History& h, int64_t member, int64_t generation, const Trial& own_last,
                        const std::vector<const Trial*>& latest);
  Config explore(const SearchSpace& space, const Config& c, Rng& rng) const;
  PbtParams params_;
  uint64_t seed_;
  int64_t generations_;
};

std::unique_ptr<Tuner> make_pbt_tuner(const nlohmann::json& params, uint64_t seed);

// One segment of a member's lineage.
struct PbtSegment {
  int64_t trial = -1;                  // trial number
  int64_t member = -1;
  int64_t generation = 0;
  double step_begin = 0.0, step_end = 0.0;
  Config config;                       // hyperparameters used during [step_begin, step_end)
  std::optional<int64_t> donor;        // trial copied at the start of this segment (exploit), if any
  std::optional<Config> before;        // the donor's hyperparameters before explore
  std::optional<double> value;         // the segment's final value (first objective), if it completed
};

// The hyperparameter schedule of the best final member: its last segment (the best successful trial of the highest
// generation reached) and its ancestors through restore_from, oldest first. Empty when no PBT trial succeeded.
std::vector<PbtSegment> pbt_schedule(const History& h);
// The schedule as text, one line per segment ("steps 0-10  trial 3  member 2  value 0.52  lr=0.01 ...") with the
// exploit and explore steps spelled out.
std::string format_pbt_schedule(const std::vector<PbtSegment>& schedule);

}  // namespace kestrel::tuners
