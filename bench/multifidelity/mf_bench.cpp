// Multi-fidelity benchmark driver: runs Kestrel's ASHA, Hyperband, BOHB (budget-owning tuners, promotions continue
// from the parent's checkpoint), the ASHA and median pruners over random search or TPE, and full-budget random search
// on curves.hpp.
// Usage: mf_bench METHOD BUDGET_STEPS SEEDS [moderate|strong|none] [FIRST_SEED] [PARAMS_JSON]  ->  one JSON line
// per seed on stdout (seeds FIRST_SEED.., default 0; PARAMS_JSON: extra tuner options, e.g. '{"random_fraction":0}').
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "bench/multifidelity/curves.hpp"
#include "tuners/asha.hpp"
#include "tuners/pruners.hpp"
#include "tuners/random.hpp"
#include "tuners/multifidelity.hpp"
#include "tuners/support.hpp"
#include "tuners/tpe.hpp"
#include "tuners/tuner.hpp"

using namespace kestrel;
using namespace kestrel::tuners;

namespace {

kestrel::bench::Crossing g_crossing = kestrel::bench::Crossing::Moderate;

struct Outcome {
  int64_t steps = 0, trials = 0;
  double picked_true = 0, picked_observed = 0;
};

std::vector<double> point(const search::Trial& t) {
  std::vector<double> x;
  for (int i = 1; i <= kestrel::bench::kDims; ++i) x.push_back(search::as_double(t.config.at("x" + std::to_string(i))));
  return x;
}

search::SearchSpace bench_space() {
  std::vector<search::ParamSpec> ps;
  for (int i = 1; i <= kestrel::bench::kDims; ++i) ps.push_back(search::ParamSpec::uniform("x" + std::to_string(i), 0, 1));
  return search::SearchSpace(ps);
}

// Budget-owning tuners: each trial trains from its parent's checkpoint (restore_from) up to its budget, so a
// promotion costs only the difference. The run ends before the first trial that would overrun `budget`.
Outcome run_tuner(const std::string& kind, const nlohmann::json& params, uint64_t seed, int64_t budget) {
  search::SearchSpace space = bench_space();
  std::unique_ptr<Tuner> tuner = kind == "random" ? make_random_tuner({}, seed) : make_multifidelity_tuner(kind, params, seed);
  std::deque<search::Trial> trials;
  Rng noise(derive_seed(seed, -7, 0x6e6f697365));
  Outcome o;
  while (o.steps < budget) {
    History h;
    h.space = &space;
    h.objectives = {search::Objective{}};
    for (const auto& t : trials) h.trials.push_back(&t);
    Proposal p;
    try {
      p = tuner->ask(h, static_cast<int64_t>(trials.size()));
    } catch (const SpaceExhausted&) {
      break;
    }
    search::Trial t;
    t.number = static_cast<int64_t>(trials.size());
    t.config = p.config;
    t.attrs = p.attrs;
    const double b = p.budget ? *p.budget : kestrel::bench::kMaxSteps;
    t.attrs["budget"] = std::to_string(b);
    double start = 0;
    if (auto it = p.attrs.find(kAttrRestoreFrom); it != p.attrs.end())
      start = std::stod(trials[static_cast<size_t>(std::stoll(it->second))].attrs.at("budget"));
    const auto cost = static_cast<int64_t>(std::llround(b - start));
    if (o.steps + cost > budget) break;  // equal budgets: a trial that would overrun is not started
    o.steps += cost;
    const double v = kestrel::bench::error_at(point(t).data(), b, g_crossing) +
                     kestrel::bench::kNoise * noise.normal();
    t.state = search::TrialState::Complete;
    t.values = {v};
    trials.push_back(std::move(t));
  }
  o.trials = static_cast<int64_t>(trials.size());
  // The pick: the best observed value among trials at the highest budget reached.
  double top = 0;
  for (const auto& t : trials) top = std::max(top, std::stod(t.attrs.at("budget")));
  const search::Trial* best = nullptr;
  for (const auto& t : trials)
    if (std::stod(t.attrs.at("budget")) == top && (!best || t.values[0] < best->values[0])) best = &t;
  if (best) {
    o.picked_observed = best->values[0];
    o.picked_true = kestrel::bench::true_final_error(point(*best).data(), g_crossing);
  }
  return o;
}

// A sampler (random search or TPE with default settings, as Optuna's peers use its TPESampler) with a pruner judging
// every step's report (no checkpoints needed: trials are not resumed).
Outcome run_pruner(const std::string& sampler, Pruner& pruner, uint64_t seed, int64_t budget) {
  search::SearchSpace space = bench_space();
  auto tuner = sampler == "tpe" ? make_tpe_tuner({}, seed) : make_random_tuner({}, seed);
  std::deque<search::Trial> trials;
  Rng noise(derive_seed(seed, -7, 0x6e6f697365));
  Outcome o;
  while (o.steps < budget) {
    History h;
    h.space = &space;
    h.objectives = {search::Objective{}};
    for (const auto& t : trials) h.trials.push_back(&t);
    search::Trial t;
    t.number = static_cast<int64_t>(trials.size());
    t.config = tuner->ask(h, t.number).config;
    t.state = search::TrialState::Running;
    trials.push_back(std::move(t));
    search::Trial& cur = trials.back();
    h.trials.push_back(&cur);
    double v = 0;
    for (int step = 1; step <= kestrel::bench::kMaxSteps; ++step) {
      if (o.steps >= budget) {  // the budget ends inside this trial: it does not count as finished
        cur.state = search::TrialState::Failed;
        break;
      }
      ++o.steps;
      v = kestrel::bench::error_at(point(cur).data(), step, g_crossing) +
          kestrel::bench::kNoise * noise.normal();
      cur.reports.push_back({step, "value", v});
      if (step < kestrel::bench::kMaxSteps && pruner.should_prune(h, cur, step)) {
        cur.state = search::TrialState::Pruned;
        break;
      }
    }
    if (cur.state == search::TrialState::Running) {
      cur.state = search::TrialState::Complete;
      cur.values = {v};
    }
  }
  o.trials = static_cast<int64_t>(trials.size());
  const search::Trial* best = nullptr;
  for (const auto& t : trials)
    if (t.state == search::TrialState::Complete && (!best || t.values[0] < best->values[0])) best = &t;
  if (best) {
    o.picked_observed = best->values[0];
    o.picked_true = kestrel::bench::true_final_error(point(*best).data(), g_crossing);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: mf_bench METHOD BUDGET_STEPS SEEDS [moderate|strong|none] [FIRST_SEED] [PARAMS_JSON]\n"
                         "  methods: random asha hyperband bohb asha_pruner median_pruner asha_pruner_tpe "
                         "median_pruner_tpe\n");
    return 2;
  }
  const std::string method = argv[1];
  const int64_t budget = std::atoll(argv[2]);
  const int seeds = std::atoi(argv[3]);
  const std::string problem = argc > 4 ? argv[4] : "moderate";
  const int first_seed = argc > 5 ? std::atoi(argv[5]) : 0;
  if (problem != "moderate" && problem != "strong" && problem != "none") {
    std::fprintf(stderr, "mf_bench: unknown problem '%s' (moderate, strong or none)\n", problem.c_str());
    return 2;
  }
  g_crossing = problem == "strong" ? kestrel::bench::Crossing::Strong
               : problem == "none" ? kestrel::bench::Crossing::None
                                   : kestrel::bench::Crossing::Moderate;
  nlohmann::json mf = {{"min_resource", 1}, {"max_resource", kestrel::bench::kMaxSteps}, {"eta", 3}};
  if (argc > 6) mf.update(nlohmann::json::parse(argv[6]));
  for (int s = first_seed; s < first_seed + seeds; ++s) {
    Outcome o;
    if (method.rfind("asha_pruner", 0) == 0) {
      AshaPruner pruner(AshaPrunerParams{1, 3, 0}, "asha");
      o = run_pruner(method == "asha_pruner_tpe" ? "tpe" : "random", pruner, static_cast<uint64_t>(s), budget);
    } else if (method.rfind("median_pruner", 0) == 0) {
      PercentilePruner pruner(PercentileParams{}, "median");  // Optuna's MedianPruner defaults: 5 start-up trials
      o = run_pruner(method == "median_pruner_tpe" ? "tpe" : "random", pruner, static_cast<uint64_t>(s), budget);
    } else {
      o = run_tuner(method, mf, static_cast<uint64_t>(s), budget);
    }
    nlohmann::json j = {{"method", "kestrel_" + method}, {"seed", s}, {"problem", problem}, {"budget", budget}, {"steps", o.steps},
                        {"trials", o.trials}, {"true_final_error", o.picked_true}, {"observed", o.picked_observed}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
