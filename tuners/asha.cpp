// ASHA: the promotion tuner (rungs from the trials' attrs) and the rung pruner (rungs from the trials' reports).
// Both read only the history, which is what makes them restartable and usable from many processes at once.
#include "tuners/asha.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "common/error.hpp"
#include "tuners/hyperband.hpp"
#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

AshaParams AshaParams::from_json(const nlohmann::json& j) {
  AshaParams p;
  ParamReader r("tuner 'asha'", j);
  r.get("min_resource", p.min_resource);
  r.get("max_resource", p.max_resource);
  r.get("eta", p.eta);
  r.get("min_early_stopping_rate", p.min_early_stopping_rate);
  r.get("min_rank_pairs", p.min_rank_pairs);
  r.get("min_rank_agreement", p.min_rank_agreement);
  r.finish();
  r.require(p.min_resource > 0, "min_resource", "must be > 0");
  r.require(p.max_resource >= p.min_resource, "max_resource", "must be >= min_resource");
  r.require(p.eta >= 2, "eta", "must be at least 2");
  r.require(p.min_early_stopping_rate >= 0, "min_early_stopping_rate", "must be >= 0");
  r.require(p.min_rank_pairs >= 0, "min_rank_pairs", "must be >= 0 (0 turns the rank check off)");
  r.require(p.min_rank_agreement >= -1 && p.min_rank_agreement <= 1, "min_rank_agreement", "must be in [-1, 1]");
  return p;
}

std::vector<double> asha_rungs(const AshaParams& p) {
  std::vector<double> out;
  double b = p.min_resource * std::pow(static_cast<double>(p.eta), static_cast<double>(p.min_early_stopping_rate));
  while (b <= p.max_resource * (1.0 + 1e-12) && out.size() < 64) {
    out.push_back(b);
    b *= static_cast<double>(p.eta);
  }
  if (out.empty())
    throw ConfigError("tuner 'asha': min_resource * eta^min_early_stopping_rate exceeds max_resource; no rung fits");
  return out;
}

AshaTuner::AshaTuner(AshaParams params, uint64_t seed) : params_(params), seed_(seed), rungs_(asha_rungs(params)) {}

namespace {

// Trials of the ASHA schedule grouped by rung (trials without the attrs, e.g. enqueued by hand, are ignored).
std::vector<std::vector<const Trial*>> by_rung(const History& h, size_t n_rungs) {
  std::vector<std::vector<const Trial*>> out(n_rungs);
  for (const Trial* t : h.trials)
    if (auto pos = rung_position(*t); pos && pos->rung < static_cast<int64_t>(n_rungs))
      out[static_cast<size_t>(pos->rung)].push_back(t);
  return out;
}

// The not-yet-promoted members of rung k's top floor(n_k / eta), best first.
std::vector<const Trial*> promotable(const History& h, const std::vector<std::vector<const Trial*>>& rungs, size_t k,
                                     int64_t eta) {
  auto ranked = ranked_by_loss(h, rungs[k]);
  ranked.resize(ranked.size() / static_cast<size_t>(eta));
  auto promoted = promoted_parents(rungs[k + 1]);
  std::vector<const Trial*> out;
  for (const Trial* t : ranked)
    if (!promoted.count(t->number)) out.push_back(t);
  return out;
}

// Rung k's losses of the successful trials promoted from it, beside their successful rung-(k+1) losses.
RankAgreement promotion_agreement(const History& h, const std::vector<const Trial*>& rung,
                                  const std::vector<const Trial*>& next) {
  std::unordered_map<int64_t, const Trial*> by_number;
  for (const Trial* t : rung) by_number.emplace(t->number, t);
  std::vector<double> low, high;
  for (const Trial* c : next) {
    auto from = int_attr(*c, kAttrPromotedFrom);
    auto it = from ? by_number.find(*from) : by_number.end();
    if (it == by_number.end()) continue;
    auto parent_loss = loss_of(h, *it->second), child_loss = loss_of(h, *c);
    if (!parent_loss || !child_loss) continue;
    low.push_back(*parent_loss);
    high.push_back(*child_loss);
  }
  return rank_agreement(low, high);
}

size_t start_rung_of(const History& h, const std::vector<std::vector<const Trial*>>& rungs, const AshaParams& p) {
  if (p.min_rank_pairs <= 0) return 0;
  size_t start = 0;
  // Pairs (k, k+1) up to (second-highest - 1, second-highest): a start at the top rung would be full-budget random
  // search, which the rank check alone never chooses. A rung that fails moves the start above it, whatever the
  // rungs below say (cheap budgets can agree with each other and still rank unlike the expensive ones).
  for (size_t k = 0; k + 2 < rungs.size(); ++k) {
    const RankAgreement r = promotion_agreement(h, rungs[k], rungs[k + 1]);
    if (r.pairs >= p.min_rank_pairs && r.tau < p.min_rank_agreement) start = k + 1;
  }
  return start;
}

}  // namespace

size_t AshaTuner::start_rung(const History& h) const {
  return start_rung_of(h, by_rung(h, rungs_.size()), params_);
}

Proposal AshaTuner::ask(const History& h, int64_t number) {
  auto rungs = by_rung(h, rungs_.size());
  Proposal out;
  out.attrs[kAttrBracket] = "0";
  for (size_t k = rungs_.size() - 1; k-- > 0;) {
    auto cands = promotable(h, rungs, k, params_.eta);
    if (cands.empty()) continue;
    const Trial* parent = cands.front();
    out.config = parent->config;
    out.budget = rungs_[k + 1];
    out.attrs[kAttrRung] = std::to_string(k + 1);
    out.attrs[kAttrPromotedFrom] = std::to_string(parent->number);
    out.attrs[kAttrRestoreFrom] = std::to_string(parent->number);
    return out;
  }
  Rng rng(derive_seed(seed_, number));
  const SearchSpace& space = *h.space;
  std::optional<Config> c;
  if (space.is_finite()) {
    std::unordered_set<std::string> seen;
    for (const auto& rung : rungs)  // every configuration started so far (rung 0, or a later start rung)
      for (const Trial* t : rung)
        if (!t->attrs.count(kAttrPromotedFrom)) seen.insert(space.key(t->config));
    c = random_unseen(space, seen, rng);
  }
  out.config = c ? *c : sample_uniform(space, rng);
  const size_t start = start_rung_of(h, rungs, params_);
  out.budget = rungs_[start];
  out.attrs[kAttrRung] = std::to_string(start);
  return out;
}

std::set<int64_t> AshaTuner::may_restore(const History& h) const {
  // Any successful trial below the top rung may enter its rung's top 1/eta later (the rung only grows), so all of
  // them stay candidates until promoted.
  auto rungs = by_rung(h, rungs_.size());
  std::set<int64_t> out;
  for (size_t k = 0; k + 1 < rungs_.size(); ++k) {
    auto promoted = promoted_parents(rungs[k + 1]);
    for (const Trial* t : ranked_by_loss(h, rungs[k]))
      if (!promoted.count(t->number)) out.insert(t->number);
  }
  return out;
}

std::unique_ptr<Tuner> make_asha_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<AshaTuner>(AshaParams::from_json(params), seed);
}

// ---------------------------------------------------------------------------------------------------------------
// Pruner

AshaPrunerParams AshaPrunerParams::from_json(const nlohmann::json& j, const std::string& kind) {
  AshaPrunerParams p;
  ParamReader r("pruner '" + kind + "'", j);
  r.get("min_resource", p.min_resource);
  r.get("reduction_factor", p.reduction_factor);
  r.get("min_early_stopping_rate", p.min_early_stopping_rate);
  r.finish();
  r.require(p.min_resource >= 1, "min_resource", "must be >= 1 (a step count)");
  r.require(p.reduction_factor >= 2, "reduction_factor", "must be at least 2");
  r.require(p.min_early_stopping_rate >= 0, "min_early_stopping_rate", "must be >= 0");
  return p;
}

namespace {

// First report of `metric` at or after `rung_step`, if the trial got that far.
std::optional<double> rung_value(const Trial& t, const std::string& metric, int64_t rung_step) {
  for (const auto& r : t.reports)  // ordered by (step, metric)
    if (r.metric == metric && r.step >= rung_step) return r.value;
  return std::nullopt;
}

}  // namespace

bool AshaPruner::should_prune(const History& h, const Trial& trial, int64_t step) {
  const std::string metric = h.objectives.empty() ? std::string("value") : h.objectives[0].name;
  const double sign = h.objectives.empty() ? 1.0 : search::minimize_sign(h.objectives[0].direction);
  auto current = trial.report_at(metric, step);
  if (!current) return false;
  if (std::isnan(*current)) return true;
  // The trial's last report before this one: rungs at or below it were judged then.
  std::optional<int64_t> previous;
  for (const auto& r : trial.reports)
    if (r.metric == metric && r.step < step) previous = r.step;
  const int64_t eta = p_.reduction_factor;
  double rung_step_d = static_cast<double>(p_.min_resource) *
                       std::pow(static_cast<double>(eta), static_cast<double>(p_.min_early_stopping_rate));
  for (; rung_step_d <= static_cast<double>(step); rung_step_d *= static_cast<double>(eta)) {
    const auto rung_step = static_cast<int64_t>(rung_step_d);
    if (previous && *previous >= rung_step) continue;
    std::vector<double> competing;
    for (const Trial* t : h.trials) {
      if (t->number == trial.number) continue;
      if (auto v = rung_value(*t, metric, rung_step); v && !std::isnan(*v)) competing.push_back(sign * *v);
    }
    const double mine = sign * *current;
    competing.push_back(mine);
    std::sort(competing.begin(), competing.end());
    int64_t idx = static_cast<int64_t>(competing.size()) / eta - 1;
    if (idx < 0) idx = 0;  // fewer than eta at the rung: only the best so far continues
    if (mine > competing[static_cast<size_t>(idx)]) return true;
  }
  return false;
}

}  // namespace kestrel::tuners
