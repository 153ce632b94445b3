// Hyperband: the bracket table of Li et al. in integer arithmetic, and the tuner that fills it from the history.
// Also home of the multi-fidelity factories (multifidelity.hpp), which need every algorithm of this family.
#include "tuners/hyperband.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/error.hpp"
#include "tuners/asha.hpp"
#include "tuners/bohb.hpp"
#include "tuners/params.hpp"
#include "tuners/pbt.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

namespace {

// eta^k in integers; the table is only defined while this stays exact.
int64_t ipow(int64_t eta, int64_t k) {
  int64_t r = 1;
  for (int64_t i = 0; i < k; ++i) r *= eta;
  return r;
}

}  // namespace

std::vector<Bracket> hyperband_brackets(double min_resource, double max_resource, int64_t eta) {
  if (!(min_resource > 0) || !std::isfinite(min_resource))
    throw ConfigError("hyperband: min_resource must be > 0, got " + std::to_string(min_resource));
  if (!(max_resource >= min_resource) || !std::isfinite(max_resource))
    throw ConfigError("hyperband: max_resource must be >= min_resource");
  if (eta < 2) throw ConfigError("hyperband: eta (reduction factor) must be at least 2, got " + std::to_string(eta));
  // s_max = floor(log_eta(R)) computed by repeated multiplication: the floating log of 81 base 3 is not exactly 4.
  const double ratio = max_resource / min_resource;
  int64_t s_max = 0;
  while (static_cast<double>(ipow(eta, s_max + 1)) <= ratio * (1.0 + 1e-12) && s_max < 40) ++s_max;
  std::vector<Bracket> out;
  for (int64_t s = s_max; s >= 0; --s) {
    Bracket b;
    b.s = s;
    // n = ceil((s_max + 1) eta^s / (s + 1)), r = R eta^-s.
    const int64_t n = ((s_max + 1) * ipow(eta, s) + s) / (s + 1);
    for (int64_t i = 0; i <= s; ++i) {
      Rung r;
      r.n = n / ipow(eta, i);
      r.budget = max_resource / static_cast<double>(ipow(eta, s - i));
      b.rungs.push_back(r);
    }
    out.push_back(std::move(b));
  }
  return out;
}

HyperbandParams HyperbandParams::from_json(const nlohmann::json& j, const std::string& owner) {
  HyperbandParams p;
  ParamReader r(owner, j);
  r.get("min_resource", p.min_resource);
  r.get("max_resource", p.max_resource);
  r.get("eta", p.eta);
  r.get("iterations", p.iterations);
  r.finish();
  r.require(p.min_resource > 0, "min_resource", "must be > 0");
  r.require(p.max_resource >= p.min_resource, "max_resource", "must be >= min_resource");
  r.require(p.eta >= 2, "eta", "must be at least 2");
  r.require(p.iterations >= 0, "iterations", "must be >= 0 (0 = no limit)");
  return p;
}

std::optional<int64_t> int_attr(const Trial& t, const std::string& key) {
  auto it = t.attrs.find(key);
  if (it == t.attrs.end()) return std::nullopt;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<RungPosition> rung_position(const Trial& t) {
  auto b = int_attr(t, kAttrBracket);
  auto r = int_attr(t, kAttrRung);
  if (!b || !r || *b < 0 || *r < 0) return std::nullopt;
  return RungPosition{*b, *r};
}

// The successful trials of a rung, best first (ties by trial number, so the order is total and reproducible).
std::vector<const Trial*> ranked_by_loss(const History& h, const std::vector<const Trial*>& ts) {
  std::vector<std::pair<double, const Trial*>> v;
  for (const Trial* t : ts)
    if (auto l = loss_of(h, *t)) v.emplace_back(*l, t);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second->number < b.second->number;
  });
  std::vector<const Trial*> out;
  for (const auto& [l, t] : v) out.push_back(t);
  return out;
}

std::set<int64_t> promoted_parents(const std::vector<const Trial*>& rung) {
  std::set<int64_t> out;
  for (const Trial* t : rung)
    if (auto p = int_attr(*t, kAttrPromotedFrom)) out.insert(*p);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

struct HyperbandTuner::Plan {
  std::map<int64_t, std::vector<std::vector<const Trial*>>> brackets;  // bracket -> rung -> trials (by number)
  bool any_running = false;
};

namespace {

// Synchronous successive halving inside one bracket. What the bracket can do next: promote `parent` into `rung`,
// start a new configuration in rung 0 (parent null, rung 0), or nothing (running trials block it, or it is over).
struct Step {
  const Trial* parent = nullptr;
  int64_t rung = -1;
};

struct BracketStatus {
  std::vector<std::optional<int64_t>> target;  // members rung i will have; unknown until rung i-1 is done
  std::vector<bool> done;                      // every member of rung i created and finished
};

BracketStatus status_of(const History& h, const Bracket& spec, const std::vector<std::vector<const Trial*>>& rungs) {
  const size_t L = spec.rungs.size();
  BracketStatus st;
  st.target.assign(L, std::nullopt);
  st.done.assign(L, false);
  st.target[0] = spec.rungs[0].n;
  for (size_t i = 0; i < L; ++i) {
    const auto& members = rungs[i];
    bool all_finished = std::all_of(members.begin(), members.end(),
                                    [](const Trial* t) { return search::is_finished(t->state); });
    st.done[i] = static_cast<int64_t>(members.size()) >= *st.target[i] && all_finished;
    if (!st.done[i]) break;
    if (i + 1 < L)
      st.target[i + 1] = std::min<int64_t>(spec.rungs[i + 1].n, static_cast<int64_t>(ranked_by_loss(h, members).size()));
  }
  return st;
}

std::optional<Step> next_step(const History& h, const Bracket& spec,
                              const std::vector<std::vector<const Trial*>>& rungs) {
  const BracketStatus st = status_of(h, spec, rungs);
  const size_t L = spec.rungs.size();
  // Deepest promotion first: it finishes brackets sooner, which is what a single worker would do anyway.
  for (size_t i = L - 1; i-- > 0;) {
    if (!st.done[i] || !st.target[i + 1]) continue;
    if (static_cast<int64_t>(rungs[i + 1].size()) >= *st.target[i + 1]) continue;
    auto promoted = promoted_parents(rungs[i + 1]);
    auto cands = ranked_by_loss(h, rungs[i]);
    cands.resize(std::min<size_t>(cands.size(), static_cast<size_t>(*st.target[i + 1])));
    for (const Trial* c : cands)
      if (!promoted.count(c->number)) return Step{c, static_cast<int64_t>(i + 1)};
  }
  if (static_cast<int64_t>(rungs[0].size()) < *st.target[0]) return Step{nullptr, 0};
  return std::nullopt;
}

}  // namespace

HyperbandTuner::HyperbandTuner(HyperbandParams params, uint64_t seed)
    : params_(params), seed_(seed), brackets_(hyperband_brackets(params.min_resource, params.max_resource, params.eta)) {}

HyperbandTuner::Plan HyperbandTuner::plan(const History& h) const {
  Plan p;
  for (const Trial* t : h.trials) {
    if (!search::is_finished(t->state)) p.any_running = true;
    auto pos = rung_position(*t);
    if (!pos) continue;
    const Bracket& spec = brackets_[static_cast<size_t>(pos->bracket) % brackets_.size()];
    if (pos->rung >= static_cast<int64_t>(spec.rungs.size())) continue;  // not ours (another schedule's attrs)
    auto& rungs = p.brackets[pos->bracket];
    if (rungs.empty()) rungs.resize(spec.rungs.size());
    rungs[static_cast<size_t>(pos->rung)].push_back(t);
  }
  return p;
}

Proposal HyperbandTuner::ask(const History& h, int64_t number) {
  Plan p = plan(h);
  auto make = [&](int64_t bracket, const Step& step) {
    const Bracket& spec = brackets_[static_cast<size_t>(bracket) % brackets_.size()];
    Proposal out;
    out.budget = spec.rungs[static_cast<size_t>(step.rung)].budget;
    out.attrs[kAttrBracket] = std::to_string(bracket);
    out.attrs[kAttrRung] = std::to_string(step.rung);
    if (step.parent) {
      out.config = step.parent->config;
      out.attrs[kAttrPromotedFrom] = std::to_string(step.parent->number);
      out.attrs[kAttrRestoreFrom] = std::to_string(step.parent->number);
    } else {
      out.config = sample_new(h, number, bracket);
    }
    return out;
  };
  for (const auto& [b, rungs] : p.brackets) {
    const Bracket& spec = brackets_[static_cast<size_t>(b) % brackets_.size()];
    if (auto step = next_step(h, spec, rungs)) return make(b, *step);
  }
  const int64_t next = p.brackets.empty() ? 0 : p.brackets.rbegin()->first + 1;
  const int64_t limit = params_.iterations * static_cast<int64_t>(brackets_.size());
  if (params_.iterations > 0 && next >= limit) {
    if (p.any_running) throw NotReady(name() + ": every bracket is open; waiting for running trials");
    throw SpaceExhausted(name() + ": all " + std::to_string(params_.iterations) + " iteration(s) are finished");
  }
  return make(next, Step{nullptr, 0});
}

std::set<int64_t> HyperbandTuner::may_restore(const History& h) const {
  Plan p = plan(h);
  std::set<int64_t> out;
  for (const auto& [b, rungs] : p.brackets) {
    const Bracket& spec = brackets_[static_cast<size_t>(b) % brackets_.size()];
    const BracketStatus st = status_of(h, spec, rungs);
    for (size_t i = 0; i + 1 < spec.rungs.size(); ++i) {
      auto promoted = promoted_parents(rungs[i + 1]);
      if (st.done[i] && st.target[i + 1] && static_cast<int64_t>(rungs[i + 1].size()) >= *st.target[i + 1]) continue;
      // Rung i still open (or its promotions still pending): any successful member may yet be promoted.
      for (const Trial* t : ranked_by_loss(h, rungs[i]))
        if (!promoted.count(t->number)) out.insert(t->number);
    }
  }
  return out;
}

Config HyperbandTuner::sample_new(const History& h, int64_t number, int64_t /*bracket*/) {
  Rng rng(derive_seed(seed_, number));
  const SearchSpace& space = *h.space;
  if (space.is_finite()) {
    std::unordered_set<std::string> seen;
    for (const Trial* t : h.trials)
      if (auto pos = rung_position(*t); pos && pos->rung == 0) seen.insert(space.key(t->config));
    if (auto c = random_unseen(space, seen, rng)) return *c;
    // Every configuration already started once: repeating one is still useful (noise, a new bracket's budget).
  }
  return sample_uniform(space, rng);
}

std::unique_ptr<Tuner> make_hyperband_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<HyperbandTuner>(HyperbandParams::from_json(params), seed);
}

// ---------------------------------------------------------------------------------------------------------------
// Factories of the family.

std::unique_ptr<Pruner> make_multifidelity_pruner(const std::string& kind, const nlohmann::json& params) {
  if (kind == "asha" || kind == "successive_halving")
    return std::make_unique<AshaPruner>(AshaPrunerParams::from_json(params, kind), kind);
  return nullptr;
}

std::unique_ptr<Tuner> make_multifidelity_tuner(const std::string& kind, const nlohmann::json& params,
                                                uint64_t seed) {
  if (kind == "hyperband") return make_hyperband_tuner(params, seed);
  if (kind == "asha") return make_asha_tuner(params, seed);
  if (kind == "bohb") return make_bohb_tuner(params, seed);
  if (kind == "pbt") return make_pbt_tuner(params, seed);
  return nullptr;
}

std::vector<std::string> multifidelity_tuner_kinds() { return {"asha", "hyperband", "bohb", "pbt"}; }
std::vector<std::string> multifidelity_pruner_kinds() { return {"asha", "successive_halving"}; }

}  // namespace kestrel::tuners
