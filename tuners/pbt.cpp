// PBT: segments as trials, exploit by truncation selection, explore by perturbation or resampling, and the lineage
// walk behind `kestrel pbt-schedule`. All state comes from the trials' attrs, so a resumed sweep decides the same.
#include "tuners/pbt.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "common/error.hpp"
#include "tuners/hyperband.hpp"
#include "tuners/params.hpp"

namespace kestrel::tuners {

PbtParams PbtParams::from_json(const nlohmann::json& j) {
  PbtParams p;
  ParamReader r("tuner 'pbt'", j);
  r.get("population", p.population);
  r.get("interval", p.interval);
  r.get("total_steps", p.total_steps);
  r.get("truncation", p.truncation);
  r.get("resample_probability", p.resample_probability);
  r.get("perturb_factors", p.perturb_factors);
  r.get("mode", p.mode);
  r.finish();
  r.require(p.population >= 2, "population", "must be at least 2");
  r.require(p.interval > 0, "interval", "must be > 0");
  r.require(p.total_steps >= p.interval, "total_steps", "must be >= interval");
  r.require(p.truncation > 0 && p.truncation <= 0.5, "truncation", "must be in (0, 0.5]");
  r.require(p.resample_probability >= 0 && p.resample_probability <= 1, "resample_probability", "must be in [0, 1]");
  r.require(!p.perturb_factors.empty() && std::all_of(p.perturb_factors.begin(), p.perturb_factors.end(),
                                                      [](double f) { return f > 0; }),
            "perturb_factors", "must be a non-empty list of positive numbers");
  r.require(p.mode == "sync" || p.mode == "async", "mode", "must be 'sync' or 'async'");
  return p;
}

PbtTuner::PbtTuner(PbtParams params, uint64_t seed)
    : params_(std::move(params)),
      seed_(seed),
      generations_(static_cast<int64_t>(std::ceil(params_.total_steps / params_.interval - 1e-9))) {}

namespace {

constexpr uint64_t kStreamInit = 0x70627430;     // "pbt0": a member's initial configuration
constexpr uint64_t kStreamExploit = 0x70627431;  // "pbt1": donor choice and explore

struct Member {
  int64_t member = -1, generation = -1;
};

std::optional<Member> pbt_position(const Trial& t) {
  auto m = int_attr(t, kAttrPbtMember);
  auto g = int_attr(t, kAttrPbtGeneration);
  if (!m || !g || *m < 0 || *g < 0) return std::nullopt;
  return Member{*m, *g};
}

// table[g][m]: the trial that trained member m in generation g (the highest-numbered one if a retry repeated it).
using Table = std::vector<std::vector<const Trial*>>;

Table table_of(const History& h, int64_t population, int64_t generations) {
  Table t(static_cast<size_t>(generations), std::vector<const Trial*>(static_cast<size_t>(population), nullptr));
  for (const Trial* tr : h.trials) {
    auto pos = pbt_position(*tr);
    if (!pos || pos->member >= population || pos->generation >= generations) continue;
    auto& slot = t[static_cast<size_t>(pos->generation)][static_cast<size_t>(pos->member)];
    if (!slot || slot->number < tr->number) slot = tr;
  }
  return t;
}

bool any_running(const History& h) {
  return std::any_of(h.trials.begin(), h.trials.end(), [](const Trial* t) { return !search::is_finished(t->state); });
}

}  // namespace

Config PbtTuner::explore(const SearchSpace& space, const Config& c, Rng& rng) const {
  Config out;
  const auto& ps = space.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    if (!space.is_active(p, out)) continue;
    auto it = c.find(p.name);
    // A parameter that became active through a resampled parent has no value to perturb: draw one.
    if (it == c.end() || p.kind == search::ParamKind::Fixed) {
      out[p.name] = it == c.end() ? space.decode_one(i, rng.uniform()) : it->second;
      continue;
    }
    if (rng.uniform() < params_.resample_probability) {
      out[p.name] = space.decode_one(i, rng.uniform());
      continue;
    }
    if (p.kind == search::ParamKind::Categorical) {
      out[p.name] = it->second;
      continue;
    }
    const double f = params_.perturb_factors[static_cast<size_t>(rng.below(
        static_cast<int64_t>(params_.perturb_factors.size())))];
    double x = std::clamp(search::as_double(it->second) * f, p.low, p.high);
    if (p.kind == search::ParamKind::Int) {
      int64_t step = p.step && !p.log ? static_cast<int64_t>(*p.step) : 1;
      auto lo = static_cast<int64_t>(p.low);
      int64_t v = lo + static_cast<int64_t>(std::llround((x - p.low) / static_cast<double>(step))) * step;
      out[p.name] = search::Value(std::in_place_type<int64_t>, std::clamp(v, lo, static_cast<int64_t>(p.high)));
    } else {
      if (p.step && !p.log) x = std::min(p.high, p.low + std::round((x - p.low) / *p.step) * *p.step);
      out[p.name] = search::Value(std::in_place_type<double>, x);
    }
  }
  return out;
}

Proposal PbtTuner::next_segment(const History& h, int64_t member, int64_t generation, const Trial& own_last,
                                const std::vector<const Trial*>& latest) {
  Rng rng(derive_seed(seed_, generation * params_.population + member, kStreamExploit));
  std::vector<const Trial*> pool;
  for (const Trial* t : latest)
    if (t) pool.push_back(t);
  auto ranked = ranked_by_loss(h, pool);
  const auto n = static_cast<int64_t>(pool.size());
  const int64_t n_cut = std::max<int64_t>(1, static_cast<int64_t>(std::floor(params_.truncation * static_cast<double>(n))));
  std::optional<int64_t> own_rank;
  for (size_t i = 0; i < ranked.size(); ++i)
    if (ranked[i]->number == own_last.number) own_rank = static_cast<int64_t>(i);
  const bool failed = !own_rank.has_value();
  const bool bottom = failed || (n >= 2 && *own_rank >= n - n_cut);
  std::vector<const Trial*> top(ranked.begin(), ranked.begin() + std::min<int64_t>(n_cut, static_cast<int64_t>(ranked.size())));
  const bool own_in_top = own_rank && *own_rank < static_cast<int64_t>(top.size());
  // Async: a donor that already trained to total_steps has nothing left to give a copy (it would train 0 steps).
  std::erase_if(top, [&](const Trial* t) { return pbt_position(*t)->generation + 1 >= generations_; });

  Proposal out;
  out.attrs[kAttrPbtMember] = std::to_string(member);
  auto set_generation = [&](int64_t g) {
    out.budget = std::min(static_cast<double>(g + 1) * params_.interval, params_.total_steps);
    out.attrs[kAttrPbtGeneration] = std::to_string(g);
  };
  set_generation(generation);
  if (bottom && !top.empty() && !own_in_top) {
    const Trial* donor = top[static_cast<size_t>(rng.below(static_cast<int64_t>(top.size())))];
    // The copy continues from the donor's step (in async mode the donor may be ahead of or behind this member).
    set_generation(pbt_position(*donor)->generation + 1);
    out.config = explore(*h.space, donor->config, rng);
    out.attrs[kAttrRestoreFrom] = std::to_string(donor->number);
    out.attrs[kAttrPbtDonor] = std::to_string(donor->number);
    out.attrs[kAttrPbtBefore] = search::config_to_json(donor->config).dump();
  } else if (failed) {
    // Nothing succeeded to copy from and this member's own state is unusable: start it afresh.
    out.config = sample_uniform(*h.space, rng);
  } else {
    out.config = own_last.config;
    out.attrs[kAttrRestoreFrom] = std::to_string(own_last.number);
  }
  return out;
}

Proposal PbtTuner::ask(const History& h, int64_t number) {
  const int64_t P = params_.population;
  Table table = table_of(h, P, generations_);
  auto fresh = [&](int64_t m) {
    Rng rng(derive_seed(seed_, m, kStreamInit));
    Proposal out;
    out.config = sample_uniform(*h.space, rng);
    out.budget = std::min(params_.interval, params_.total_steps);
    out.attrs[kAttrPbtMember] = std::to_string(m);
    out.attrs[kAttrPbtGeneration] = "0";
    return out;
  };
  auto finished = [](const Trial* t) { return t && search::is_finished(t->state); };

  if (params_.mode == "sync") {
    for (int64_t g = 0; g < generations_; ++g) {
      const auto& row = table[static_cast<size_t>(g)];
      for (int64_t m = 0; m < P; ++m) {
        if (row[static_cast<size_t>(m)]) continue;
        if (g == 0) return fresh(m);
        const auto& prev = table[static_cast<size_t>(g - 1)];
        if (!std::all_of(prev.begin(), prev.end(), finished))
          throw NotReady("pbt: generation " + std::to_string(g - 1) + " is still running (sync mode)");
        return next_segment(h, m, g, *prev[static_cast<size_t>(m)], prev);
      }
    }
  } else {
    for (int64_t m = 0; m < P; ++m)
      if (!table[0][static_cast<size_t>(m)]) return fresh(m);
    // latest[m]: member m's most recent trial; done[m]: its most recent finished one (what the others compare to).
    std::vector<const Trial*> latest(static_cast<size_t>(P), nullptr), done(static_cast<size_t>(P), nullptr);
    std::vector<int64_t> latest_gen(static_cast<size_t>(P), -1);
    for (int64_t g = 0; g < generations_; ++g)
      for (int64_t m = 0; m < P; ++m)
        if (const Trial* t = table[static_cast<size_t>(g)][static_cast<size_t>(m)]) {
          latest[static_cast<size_t>(m)] = t;
          latest_gen[static_cast<size_t>(m)] = g;
          if (finished(t)) done[static_cast<size_t>(m)] = t;
        }
    int64_t pick = -1;
    for (int64_t m = 0; m < P; ++m) {
      auto mi = static_cast<size_t>(m);
      if (!finished(latest[mi]) || latest_gen[mi] + 1 >= generations_) continue;
      if (pick < 0 || latest_gen[mi] < latest_gen[static_cast<size_t>(pick)]) pick = m;
    }
    if (pick >= 0) {
      auto pi = static_cast<size_t>(pick);
      return next_segment(h, pick, latest_gen[pi] + 1, *latest[pi], done);
    }
  }
  if (any_running(h)) throw NotReady("pbt: every free member is done; waiting for running segments");
  throw SpaceExhausted("pbt: every member reached total_steps");
}

std::set<int64_t> PbtTuner::may_restore(const History& h) const {
  // A member's latest successful segment may be continued by itself or copied by another member.
  Table table = table_of(h, params_.population, generations_);
  std::set<int64_t> out;
  // Sync: the generation before the first incomplete one is what every remaining member of it ranks and copies.
  if (params_.mode == "sync")
    for (int64_t g = 1; g < generations_; ++g) {
      const auto& row = table[static_cast<size_t>(g)];
      if (std::all_of(row.begin(), row.end(), [](const Trial* t) { return t != nullptr; })) continue;
      for (const Trial* t : table[static_cast<size_t>(g - 1)])
        if (t && loss_of(h, *t)) out.insert(t->number);
      break;
    }
  for (int64_t m = 0; m < params_.population; ++m)
    for (int64_t g = generations_ - 1; g >= 0; --g)
      if (const Trial* t = table[static_cast<size_t>(g)][static_cast<size_t>(m)]; t && loss_of(h, *t)) {
        if (g + 1 < generations_) out.insert(t->number);
        break;
      }
  return out;
}

std::unique_ptr<Tuner> make_pbt_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<PbtTuner>(PbtParams::from_json(params), seed);
}

// ---------------------------------------------------------------------------------------------------------------
// Lineage

std::vector<PbtSegment> pbt_schedule(const History& h) {
  std::map<int64_t, const Trial*> by_number;
  const Trial* best = nullptr;
  int64_t best_gen = -1;
  double best_loss = 0.0;
  for (const Trial* t : h.trials) {
    auto pos = pbt_position(*t);
    if (!pos) continue;
    by_number[t->number] = t;
    auto l = loss_of(h, *t);
    if (!l) continue;
    if (pos->generation > best_gen || (pos->generation == best_gen && *l < best_loss)) {
      best = t;
      best_gen = pos->generation;
      best_loss = *l;
    }
  }
  std::vector<PbtSegment> out;
  std::set<int64_t> visited;
  for (const Trial* t = best; t && visited.insert(t->number).second;) {
    PbtSegment s;
    s.trial = t->number;
    auto pos = *pbt_position(*t);
    s.member = pos.member;
    s.generation = pos.generation;
    s.config = t->config;
    if (auto it = t->attrs.find(kAttrBudget); it != t->attrs.end()) s.step_end = std::stod(it->second);
    if (auto d = int_attr(*t, kAttrPbtDonor)) s.donor = *d;
    if (auto it = t->attrs.find(kAttrPbtBefore); it != t->attrs.end())
      s.before = search::config_from_json(nlohmann::json::parse(it->second));
    if (auto l = loss_of(h, *t)) s.value = t->values[0];
    out.push_back(std::move(s));
    auto parent = int_attr(*t, kAttrRestoreFrom);
    auto it = parent ? by_number.find(*parent) : by_number.end();
    t = it == by_number.end() ? nullptr : it->second;
  }
  std::reverse(out.begin(), out.end());
  for (size_t i = 0; i < out.size(); ++i) out[i].step_begin = i == 0 ? 0.0 : out[i - 1].step_end;
  return out;
}

std::string format_pbt_schedule(const std::vector<PbtSegment>& schedule) {
  std::ostringstream os;
  if (schedule.empty()) return "no PBT trial has completed yet\n";
  for (const auto& s : schedule) {
    os << "steps " << s.step_begin << "-" << s.step_end << "  trial " << s.trial << "  member " << s.member;
    if (s.value) os << "  value " << *s.value;
    os << " ";
    for (const auto& [k, v] : s.config) os << " " << k << "=" << search::to_string(v);
    os << "\n";
    if (s.donor) {
      os << "    exploit: copied trial " << *s.donor;
      if (s.before) {
        os << "; explore:";
        for (const auto& [k, v] : s.config) {
          auto it = s.before->find(k);
          if (it == s.before->end())
            os << " " << k << " (new)=" << search::to_string(v);
          else if (!search::values_equal(it->second, v))
            os << " " << k << " " << search::to_string(it->second) << "->" << search::to_string(v);
        }
      }
      os << "\n";
    }
  }
  return os.str();
}

}  // namespace kestrel::tuners
