// Regularized evolution (Real et al. 2019) over architectures and hyperparameters, with an NSGA-II selection
// (non-dominated rank, crowding distance) for several objectives.
#include <algorithm>
#include <numeric>

#include "common/error.hpp"
#include "nas/controllers.hpp"
#include "nas/pareto.hpp"

namespace kestrel::nas {

EvolutionController::EvolutionController(EvolutionParams p, ControllerParams common, uint64_t seed)
    : NasController(std::move(common), seed), p_(std::move(p)) {}

tuners::Proposal EvolutionController::ask(const tuners::History& h, int64_t number) {
  const Context ctx = read(h);
  tuners::Rng rng(tuners::derive_seed(seed_, number));
  const size_t P = static_cast<size_t>(p_.population);
  if (ctx.done.size() < P) return random_unseen(ctx, rng);

  const bool nsga = p_.selection == "nsga2" || (p_.selection == "auto" && ctx.objectives > 1);
  // Population and a "better than" order on it.
  std::vector<const Observation*> pop;
  std::vector<int> rank;
  std::vector<double> crowd;
  if (!nsga) {
    // Aging: the P newest COMPLETE trials; the oldest die whatever their fitness.
    for (size_t i = ctx.done.size() - P; i < ctx.done.size(); ++i) pop.push_back(&ctx.done[i]);
  } else {
    // Elitist NSGA-II environment selection over every COMPLETE trial.
    std::vector<std::vector<double>> pts;
    for (const auto& o : ctx.done) pts.push_back(o.losses);
    const std::vector<int> r = nondominated_ranks(pts);
    const std::vector<double> c = crowding_distances(pts, r);
    std::vector<size_t> idx(ctx.done.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return crowded_less(r[a], c[a], r[b], c[b]); });
    for (size_t k = 0; k < P; ++k) {
      pop.push_back(&ctx.done[idx[k]]);
      rank.push_back(r[idx[k]]);
      crowd.push_back(c[idx[k]]);
    }
  }
  auto better = [&](size_t a, size_t b) {
    if (nsga) return crowded_less(rank[a], crowd[a], rank[b], crowd[b]);
    return pop[a]->losses[0] < pop[b]->losses[0];
  };

  const size_t S = static_cast<size_t>(p_.sample_size);
  std::vector<size_t> order(pop.size());
  for (int attempt = 0; attempt < 50; ++attempt) {
    // Tournament: S distinct members (partial Fisher-Yates), the best is the parent.
    std::iota(order.begin(), order.end(), 0);
    for (size_t k = 0; k < S; ++k)
      std::swap(order[k], order[k + static_cast<size_t>(rng.below(static_cast<int64_t>(order.size() - k)))]);
    size_t parent = order[0];
    for (size_t k = 1; k < S; ++k)
      if (better(order[k], parent)) parent = order[k];
    const Observation& par = *pop[parent];

    Arch child = par.arch;
    search::Config hp = par.hp;
    const size_t H = active_hp_count(ctx.hp_space, hp);
    size_t active_decisions = 0;
    for (size_t i = 0; i < child.size(); ++i) active_decisions += space_->active(child, i);
    const bool mutate_hp_now =
        H > 0 && rng.uniform() < static_cast<double>(H) / static_cast<double>(H + active_decisions);
    if (mutate_hp_now) {
      hp = mutate_hp(ctx.hp_space, hp, p_.hp_sigma, rng);
    } else {
      const std::vector<Arch> nb = space_->neighbors(child);
      if (nb.empty()) continue;
      child = nb[static_cast<size_t>(rng.below(static_cast<int64_t>(nb.size())))];
    }
    if (common_.dedup == "none" || !ctx.seen.count(key(child, hp, ctx.hp_space))) return propose(child, hp);
  }
  // Every mutation tried was already in the study (a converged population): explore instead.
  return random_unseen(ctx, rng);
}

}  // namespace kestrel::nas
