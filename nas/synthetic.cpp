// The synthetic architecture-quality function (table over the whole cell space) and its ask/tell driver.
#include "nas/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "common/error.hpp"

namespace kestrel::nas {

SyntheticCellScore::SyntheticCellScore(std::shared_ptr<const CellSpace> space, uint64_t seed, SyntheticParams p)
    : space_(std::move(space)), p_(p) {
  const size_t E = space_->num_edges(), K = space_->ops().size();
  tuners::Rng rng(tuners::derive_seed(seed, 0, 0x5e17));
  std::vector<double> a(E * K), b(E * E * K * K, 0.0);
  for (double& x : a) x = rng.normal();
  for (size_t e = 0; e < E; ++e)
    for (size_t f = e + 1; f < E; ++f)
      for (size_t i = 0; i < K; ++i)
        for (size_t j = 0; j < K; ++j) b[((e * E + f) * K + i) * K + j] = p_.interaction * rng.normal();
  auto raw = [&](const Arch& x) {
    double z = 0.0;
    for (size_t e = 0; e < E; ++e) {
      z += a[e * K + x[e]];
      for (size_t f = e + 1; f < E; ++f) z += b[((e * E + f) * K + x[e]) * K + x[f]];
    }
    return z;
  };
  const std::vector<Arch> cells = space_->enumerate();
  // Representative of each isomorphism class: smallest op-index sum, then smallest index.
  std::unordered_map<std::string, size_t> rep;
  std::vector<std::string> keys(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    keys[i] = space_->iso_key(cells[i]);
    auto [it, inserted] = rep.emplace(keys[i], i);
    if (!inserted) {
      auto sum = [](const Arch& x) { int s = 0; for (int v : x) s += v; return s; };
      if (sum(cells[i]) < sum(cells[it->second])) it->second = i;
    }
  }
  table_.assign(cells.size(), 0.0);
  std::vector<char> valid(cells.size());
  double mean = 0.0, sq = 0.0;
  size_t nv = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    valid[i] = space_->check(cells[i]).valid;
    table_[i] = raw(cells[rep.at(keys[i])]);
    if (valid[i]) {
      mean += table_[i];
      ++nv;
    }
  }
  if (nv == 0) throw ConfigError("synthetic score: the cell space has no valid cell");
  mean /= static_cast<double>(nv);
  for (size_t i = 0; i < cells.size(); ++i)
    if (valid[i]) sq += (table_[i] - mean) * (table_[i] - mean);
  const double sd = std::sqrt(sq / static_cast<double>(nv));
  double lo = std::numeric_limits<double>::infinity();
  optimum_ = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < cells.size(); ++i)
    if (valid[i]) {
      table_[i] = (table_[i] - mean) / sd;
      lo = std::min(lo, table_[i]);
      optimum_ = std::max(optimum_, table_[i]);
    }
  for (size_t i = 0; i < cells.size(); ++i)
    if (!valid[i]) table_[i] = lo - 1.0;
}

std::vector<double> run_synthetic(tuners::Tuner& tuner, const SyntheticCellScore& score, int evaluations,
                                  uint64_t noise_seed, const std::vector<search::ParamSpec>& extra,
                                  std::vector<search::Trial>* history_out) {
  std::vector<search::ParamSpec> params = score.space().params();
  params.insert(params.end(), extra.begin(), extra.end());
  const search::SearchSpace space(params);
  std::vector<search::Trial> trials;
  trials.reserve(static_cast<size_t>(evaluations));
  std::vector<double> out;
  for (int i = 0; i < evaluations; ++i) {
    tuners::History h;
    h.space = &space;
    h.objectives = {search::Objective{"quality", search::Direction::Maximize}};
    for (const auto& t : trials) h.trials.push_back(&t);
    tuners::Proposal p = tuner.ask(h, i);
    space.check(p.config);
    search::Trial t;
    t.id = t.number = i;
    t.config = std::move(p.config);
    t.attrs = std::move(p.attrs);
    const Arch a = score.space().from_config(t.config);
    tuners::Rng rng(tuners::derive_seed(noise_seed, i));
    t.values = {score.observe(a, rng)};
    t.state = search::TrialState::Complete;
    out.push_back(score.quality(a));
    trials.push_back(std::move(t));
  }
  if (history_out) *history_out = std::move(trials);
  return out;
}

}  // namespace kestrel::nas
