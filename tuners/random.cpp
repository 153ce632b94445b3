// RandomTuner: one seeded stream per trial number; duplicates in finite spaces are skipped by random_unseen.
// The history is read only for deduplication, so the random tuner is trivially resumable.
#include "tuners/random.hpp"

#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

RandomParams RandomParams::from_json(const nlohmann::json& j) {
  RandomParams p;
  ParamReader r("tuner 'random'", j);
  r.finish();
  return p;
}

Proposal RandomTuner::ask(const History& h, int64_t number) {
  Rng rng(derive_seed(seed_, number));
  const SearchSpace& space = *h.space;
  std::unordered_set<std::string> seen;
  if (space.is_finite()) seen = seen_keys(h);
  auto c = random_unseen(space, seen, rng);
  if (!c)
    throw SpaceExhausted("random: every one of the space's configurations is already in the study");
  return Proposal{std::move(*c), {}, std::nullopt};
}

std::unique_ptr<Tuner> make_random_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<RandomTuner>(RandomParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
