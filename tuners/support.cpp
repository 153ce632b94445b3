// Shared tuner helpers: portable RNG draws, loss extraction, duplicate keys, finite-space enumeration.
// Enumeration walks parameters in space order so conditional children only multiply the branches that activate them.
#include "tuners/support.hpp"

#include <cmath>
#include <functional>
#include <numbers>

#include "common/error.hpp"

namespace kestrel::tuners {

double Rng::normal() {
  if (spare_) {
    double s = *spare_;
    spare_.reset();
    return s;
  }
  double u1 = 1.0 - uniform();  // (0, 1], keeps log finite
  double u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
  return r * std::cos(2.0 * std::numbers::pi * u2);
}

std::optional<double> loss_of(const History& h, const Trial& t) {
  if (t.state != TrialState::Complete || t.values.empty() || !std::isfinite(t.values[0])) return std::nullopt;
  auto dir = h.objectives.empty() ? search::Direction::Minimize : h.objectives[0].direction;
  return search::minimize_sign(dir) * t.values[0];
}

RankAgreement rank_agreement(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw Error("rank_agreement: the two rankings must list the same items (lengths differ)");
  // O(n^2) over the few configurations seen at both budgets; no library in the dependency set provides it.
  int64_t concordant = 0, discordant = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = i + 1; j < a.size(); ++j) {
      const double s = (a[i] - a[j]) * (b[i] - b[j]);
      if (s > 0) ++concordant;
      else if (s < 0) ++discordant;
    }
  RankAgreement r;
  r.pairs = concordant + discordant;
  if (r.pairs > 0) r.tau = static_cast<double>(concordant - discordant) / static_cast<double>(r.pairs);
  return r;
}

std::unordered_set<std::string> seen_keys(const History& h) {
  std::unordered_set<std::string> keys;
  keys.reserve(h.trials.size() * 2);
  for (const Trial* t : h.trials) keys.insert(h.space->key(t->config));
  return keys;
}

namespace {

// The values a finite parameter can take, in order.
std::vector<search::Value> values_of(const search::ParamSpec& p) {
  std::vector<search::Value> out;
  switch (p.kind) {
    case search::ParamKind::Fixed: out.push_back(p.fixed); break;
    case search::ParamKind::Categorical: out = p.choices; break;
    case search::ParamKind::Int: {
      int64_t step = p.step && !p.log ? static_cast<int64_t>(*p.step) : 1;
      for (int64_t x = static_cast<int64_t>(p.low); x <= static_cast<int64_t>(p.high); x += step)
        out.emplace_back(std::in_place_type<int64_t>, x);
      break;
    }
    case search::ParamKind::Float: {
      if (!p.step)
        throw ConfigError("parameter '" + p.name +
                          "' is continuous, so the space has infinitely many configurations; give it a `step` "
                          "(or use a tuner for continuous spaces: random, sobol, tpe, gp, cmaes)");
      int64_t k = p.cardinality();
      for (int64_t i = 0; i < k; ++i)
        out.emplace_back(std::in_place_type<double>, std::min(p.low + static_cast<double>(i) * *p.step, p.high));
      break;
    }
  }
  return out;
}

}  // namespace

std::vector<Config> enumerate_configs(const SearchSpace& space, int64_t limit) {
  const auto& ps = space.params();
  std::vector<std::vector<search::Value>> values;
  for (const auto& p : ps) values.push_back(values_of(p));
  std::vector<Config> out;
  Config cur;
  std::function<void(size_t)> walk = [&](size_t i) {
    if (i == ps.size()) {
      if (static_cast<int64_t>(out.size()) >= limit)
        throw ConfigError("the space has more than " + std::to_string(limit) +
                          " configurations, too many to enumerate; use random or sobol instead of grid");
      out.push_back(cur);
      return;
    }
    if (!space.is_active(ps[i], cur)) {
      walk(i + 1);
      return;
    }
    for (const auto& v : values[i]) {
      cur[ps[i].name] = v;
      walk(i + 1);
    }
    cur.erase(ps[i].name);
  };
  walk(0);
  return out;
}

Config sample_uniform(const SearchSpace& space, Rng& rng) {
  std::vector<double> u(space.size());
  for (auto& x : u) x = rng.uniform();
  return space.decode(u);
}

std::optional<Config> random_unseen(const SearchSpace& space, const std::unordered_set<std::string>& seen, Rng& rng) {
  Config c = sample_uniform(space, rng);
  if (!space.is_finite() || seen.empty() || !seen.count(space.key(c))) return c;
  for (int attempt = 0; attempt < 64; ++attempt) {
    c = sample_uniform(space, rng);
    if (!seen.count(space.key(c))) return c;
  }
  if (space.cardinality() > kEnumerateLimit) return c;  // a duplicate after 64 tries is astronomically unlikely here
  std::vector<Config> all = enumerate_configs(space, kEnumerateLimit);
  std::vector<size_t> unseen;
  for (size_t i = 0; i < all.size(); ++i)
    if (!seen.count(space.key(all[i]))) unseen.push_back(i);
  if (unseen.empty()) return std::nullopt;
  return all[unseen[static_cast<size_t>(rng.below(static_cast<int64_t>(unseen.size())))]];
}

}  // namespace kestrel::tuners
