// Tests of the NAS controllers: factory and option errors, deduplication, evolution's single-edit children,
// resume (a fresh controller given the history proposes the same), REINFORCE's rising expected reward, evolution
// and Bayesian optimization beating random search on the synthetic score, hyperparameters alongside, NSGA-II.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "common/error.hpp"
#include "nas/controllers.hpp"
#include "nas/pareto.hpp"
#include "nas/synthetic.hpp"

namespace kestrel::nas {
namespace {

std::shared_ptr<const CellSpace> nb201() { return std::make_shared<CellSpace>(); }

double best_of(const std::vector<double>& q, size_t n) {
  return *std::max_element(q.begin(), q.begin() + static_cast<long>(std::min(n, q.size())));
}

TEST(NasFactory, MakesEveryKindAndRefusesUnknownOnes) {
  for (const auto& k : nas_tuner_kinds()) {
    auto t = make_nas_tuner(k, nlohmann::json::object(), 1);
    EXPECT_EQ(t->name(), k);
    EXPECT_TRUE(is_nas_tuner(k));
  }
  EXPECT_FALSE(is_nas_tuner("tpe"));
  EXPECT_THROW(make_nas_tuner("nas_magic", {}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_evolution", {{"populaton", 5}}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_evolution", {{"population", 5}, {"sample_size", 9}}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_bo", {{"encoding", "path"}, {"space", {{"type", "macro"}}}}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_random", {{"dedup", "maybe"}}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_evolution", {{"mutation", "greedy"}}, 1), ConfigError);
  EXPECT_THROW(make_nas_tuner("nas_reinforce", {{"credit", "all"}}, 1), ConfigError);
  EXPECT_NO_THROW(make_nas_tuner("nas_bo", {{"encoding", "path"}}, 1));
}

TEST(NasFactory, AutoIsTheBayesianControllerForOneObjectiveAndNsgaEvolutionForSeveral) {
  const SyntheticCellScore score(nb201(), 7);
  const search::SearchSpace ss(score.space().params());
  std::vector<search::Trial> trials;
  auto bo = make_nas_tuner("nas_bo", {}, 4);
  run_synthetic(*bo, score, 25, 2, {}, &trials);
  tuners::History h;
  h.space = &ss;
  h.objectives = {search::Objective{"quality", search::Direction::Maximize}};
  for (const auto& t : trials) h.trials.push_back(&t);
  auto aut = make_nas_tuner("nas_auto", {}, 4);
  EXPECT_EQ(aut->ask(h, 25).attrs.at("arch"), make_nas_tuner("nas_bo", {}, 4)->ask(h, 25).attrs.at("arch"));
  // Two objectives: the second is the number of non-none edges.
  std::vector<search::Trial> two = trials;
  for (auto& t : two) {
    double edges = 0;
    for (int op : score.space().from_config(t.config)) edges += op != 0;
    t.values.push_back(edges);
  }
  tuners::History h2 = h;
  h2.objectives.push_back(search::Objective{"edges", search::Direction::Minimize});
  h2.trials.clear();
  for (const auto& t : two) h2.trials.push_back(&t);
  EXPECT_EQ(aut->ask(h2, 25).attrs.at("arch"), make_nas_tuner("nas_evolution", {}, 4)->ask(h2, 25).attrs.at("arch"));
}

TEST(NasFactory, AskRefusesASearchSpaceWithoutTheArchitectureParameters) {
  auto t = make_nas_tuner("nas_random", {}, 1);
  const search::SearchSpace ss({search::ParamSpec::uniform("lr", 1e-4, 1e-1, true)});
  tuners::History h;
  h.space = &ss;
  try {
    t->ask(h, 0);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("arch_1_0"), std::string::npos);
  }
}

TEST(RandomController, NeverProposesTheSameFunctionTwiceAndCarriesTheCanonicalString) {
  const SyntheticCellScore score(nb201(), 1);
  auto t = make_nas_tuner("nas_random", {}, 3);
  std::vector<search::Trial> trials;
  run_synthetic(*t, score, 300, 9, {}, &trials);
  std::set<std::string> keys;
  for (const auto& tr : trials) {
    const Arch a = score.space().from_config(tr.config);
    EXPECT_TRUE(score.space().check(a).valid);
    EXPECT_EQ(tr.attrs.at("arch"), score.space().canonical(a));
    EXPECT_TRUE(keys.insert(score.space().iso_key(a)).second) << tr.attrs.at("arch");
  }
}

TEST(EvolutionController, EveryChildIsOneValidEditFromAMemberOfThePopulation) {
  const SyntheticCellScore score(nb201(), 2);
  auto t = make_nas_tuner("nas_evolution", {{"population", 10}, {"sample_size", 3}}, 5);
  std::vector<search::Trial> trials;
  run_synthetic(*t, score, 80, 4, {}, &trials);
  const CellSpace& sp = score.space();
  for (size_t i = 10; i < trials.size(); ++i) {
    const Arch child = sp.from_config(trials[i].config);
    EXPECT_TRUE(sp.check(child).valid);
    bool from_population = false;
    for (size_t j = i - 10; j < i; ++j) {
      const Arch par = sp.from_config(trials[j].config);
      int diff = 0;
      for (size_t e = 0; e < par.size(); ++e) diff += par[e] != child[e];
      if (diff == 1 && sp.iso_key(par) != sp.iso_key(child)) from_population = true;
    }
    // The only other path is the random fallback, taken when every mutation tried was already evaluated.
    EXPECT_TRUE(from_population) << "trial " << i << " " << trials[i].attrs.at("arch");
  }
}

TEST(Controllers, AFreshControllerGivenTheHistoryProposesWhatTheRunningOneDid) {
  const SyntheticCellScore score(nb201(), 3);
  const search::SearchSpace ss(score.space().params());
  for (const std::string kind : {"nas_random", "nas_evolution", "nas_reinforce", "nas_bo"}) {
    const nlohmann::json params = kind == "nas_evolution" ? nlohmann::json{{"population", 8}, {"sample_size", 3}}
                                                          : nlohmann::json::object();
    auto t = make_nas_tuner(kind, params, 11);
    std::vector<search::Trial> trials;
    run_synthetic(*t, score, 40, 6, {}, &trials);
    for (size_t k : {5u, 17u, 30u, 39u}) {
      auto fresh = make_nas_tuner(kind, params, 11);
      tuners::History h;
      h.space = &ss;
      h.objectives = {search::Objective{"quality", search::Direction::Maximize}};
      for (size_t i = 0; i < k; ++i) h.trials.push_back(&trials[i]);
      const tuners::Proposal p = fresh->ask(h, static_cast<int64_t>(k));
      EXPECT_EQ(p.attrs.at("arch"), trials[k].attrs.at("arch")) << kind << " at trial " << k;
    }
  }
}

// Expected true quality of a factorized policy, exactly, by enumeration.
double expected_quality(const SyntheticCellScore& score, const std::vector<std::vector<double>>& pol) {
  double s = 0.0;
  for (int64_t i = 0; i < static_cast<int64_t>(score.table().size()); ++i) {
    const Arch a = score.space().from_index(i);
    double p = 1.0;
    for (size_t e = 0; e < a.size(); ++e) p *= pol[e][a[e]];
    s += p * score.table()[i];
  }
  return s;
}

TEST(ReinforceController, RaisesTheExpectedRewardOfItsPolicy) {
  const SyntheticCellScore score(nb201(), 4);
  const search::SearchSpace ss(score.space().params());
  for (uint64_t seed : {1, 2, 3}) {
    ReinforceController t(ReinforceParams{}, ControllerParams{}, seed);
    std::vector<search::Trial> trials;
    run_synthetic(t, score, 150, seed, {}, &trials);
    tuners::History h;
    h.space = &ss;
    h.objectives = {search::Objective{"quality", search::Direction::Maximize}};
    const double before = expected_quality(score, t.policy(h));
    for (const auto& tr : trials) h.trials.push_back(&tr);
    const double after = expected_quality(score, t.policy(h));
    // The uniform policy's expectation includes degenerate cells; the learned one must be well above it.
    EXPECT_GT(after, before + 1.0) << "seed " << seed << ": " << before << " -> " << after;
  }
}

TEST(ReinforceController, GivesNoCreditToEdgesOnNoInputOutputPath) {
  // Node 1 feeds nothing (edges 2<-1 and 3<-1 are none), so the op on edge 1<-0 cannot affect the reward.
  const auto space = nb201();
  const search::SearchSpace ss(space->params());
  std::vector<search::Trial> trials;
  for (int i = 0; i < 12; ++i) {
    const Arch a = {1 + i % 4, 2 + i % 3, 0, 1 + (i / 2) % 4, 0, 3};
    ASSERT_TRUE(space->check(a).valid);
    search::Trial t;
    t.number = i;
    t.config = space->to_config(a);
    t.state = search::TrialState::Complete;
    t.values = {static_cast<double>((i * 7) % 5) + 0.1 * i};
    trials.push_back(t);
  }
  tuners::History h;
  h.space = &ss;
  h.objectives = {search::Objective{"quality", search::Direction::Maximize}};
  for (const auto& t : trials) h.trials.push_back(&t);
  const auto live = ReinforceController(ReinforceParams{}, ControllerParams{}, 1).policy(h);
  ReinforceParams active;
  active.credit = "active";
  const auto all = ReinforceController(active, ControllerParams{}, 1).policy(h);
  for (double p : live[0]) EXPECT_DOUBLE_EQ(p, 0.2);  // dead edge: still uniform
  double moved_live = 0, moved_all = 0;
  for (double p : live[1]) moved_live += std::abs(p - 0.2);
  for (double p : all[0]) moved_all += std::abs(p - 0.2);
  EXPECT_GT(moved_live, 0.05);  // a live edge learned
  EXPECT_GT(moved_all, 0.05);   // with "active" credit the dead edge moves too: the difference is the rule
}

TEST(EvolutionController, ModelGuidedMutationBeatsUniformMutationAtEqualEvaluations) {
  const int kSeeds = 8, kEvals = 60;
  double guided = 0, uniform = 0;
  for (int s = 0; s < kSeeds; ++s) {
    const SyntheticCellScore score(nb201(), 300 + s);
    auto g = make_nas_tuner("nas_evolution", {}, s);
    auto u = make_nas_tuner("nas_evolution", {{"mutation", "uniform"}}, s);
    guided += score.optimum() - best_of(run_synthetic(*g, score, kEvals, s), kEvals);
    uniform += score.optimum() - best_of(run_synthetic(*u, score, kEvals, s), kEvals);
  }
  RecordProperty("mean_regret_guided", std::to_string(guided / kSeeds));
  RecordProperty("mean_regret_uniform", std::to_string(uniform / kSeeds));
  EXPECT_LT(guided, uniform);
}

TEST(Controllers, EvolutionAndBayesBeatRandomSearchAtEqualEvaluations) {
  const int kSeeds = 6, kEvals = 100;
  double random_sum = 0, evo_sum = 0, bo_sum = 0;
  for (int s = 0; s < kSeeds; ++s) {
    const SyntheticCellScore score(nb201(), 100 + s);
    auto r = make_nas_tuner("nas_random", {}, s);
    auto e = make_nas_tuner("nas_evolution", {}, s);
    auto b = make_nas_tuner("nas_bo", {}, s);
    random_sum += score.optimum() - best_of(run_synthetic(*r, score, kEvals, s), kEvals);
    evo_sum += score.optimum() - best_of(run_synthetic(*e, score, kEvals, s), kEvals);
    bo_sum += score.optimum() - best_of(run_synthetic(*b, score, kEvals, s), kEvals);
  }
  EXPECT_LT(evo_sum, random_sum);
  EXPECT_LT(bo_sum, random_sum);
  RecordProperty("mean_regret_random", std::to_string(random_sum / kSeeds));
  RecordProperty("mean_regret_evolution", std::to_string(evo_sum / kSeeds));
  RecordProperty("mean_regret_bo", std::to_string(bo_sum / kSeeds));
}

TEST(Controllers, ProposeHyperparametersAlongsideTheArchitecture) {
  const SyntheticCellScore score(nb201(), 5);
  const std::vector<search::ParamSpec> extra = {search::ParamSpec::uniform("lr", 1e-4, 1e-1, true),
                                                search::ParamSpec::categorical("opt", {std::string("sgd"), std::string("adam")})};
  for (const std::string kind : {"nas_random", "nas_evolution", "nas_reinforce", "nas_bo"}) {
    const nlohmann::json params = kind == "nas_evolution" ? nlohmann::json{{"population", 6}, {"sample_size", 2}}
                                                          : nlohmann::json::object();
    auto t = make_nas_tuner(kind, params, 1);
    std::vector<search::Trial> trials;
    run_synthetic(*t, score, 40, 1, extra, &trials);  // run_synthetic checks every config against the space
    std::set<double> lrs;
    for (const auto& tr : trials) lrs.insert(std::get<double>(tr.config.at("lr")));
    EXPECT_GT(lrs.size(), 5u) << kind;
  }
}

TEST(Controllers, SearchTheMacroSpaceWithConfigsThatPassTheSpaceCheck) {
  const nlohmann::json macro = {{"type", "macro"}, {"depths", {1, 2, 3}}, {"widths", {8, 16}}};
  const auto arch_space = make_arch_space(macro);
  const search::SearchSpace ss(arch_params(macro));
  for (const std::string kind : {"nas_random", "nas_evolution", "nas_reinforce", "nas_bo"}) {
    nlohmann::json params = {{"space", macro}};
    if (kind == "nas_evolution") params.update({{"population", 4}, {"sample_size", 2}});
    if (kind == "nas_bo") params["n_startup"] = 4;
    auto t = make_nas_tuner(kind, params, 3);
    std::vector<search::Trial> trials;
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
      tuners::History h;
      h.space = &ss;
      h.objectives = {search::Objective{}};
      for (const auto& tr : trials) h.trials.push_back(&tr);
      const auto p = t->ask(h, i);
      EXPECT_NO_THROW(ss.check(p.config)) << kind;
      const Arch a = arch_space->from_config(p.config);
      EXPECT_EQ(p.attrs.at("arch"), arch_space->canonical(a));
      EXPECT_TRUE(seen.insert(p.attrs.at("arch")).second) << kind << " repeated " << p.attrs.at("arch");
      search::Trial tr;
      tr.number = i;
      tr.config = p.config;
      tr.state = search::TrialState::Complete;
      // A made-up loss: deeper and wider is better.
      double loss = -static_cast<double>(std::count(p.attrs.at("arch").begin(), p.attrs.at("arch").end(), '|'));
      loss -= 0.1 * static_cast<double>(p.attrs.at("arch").find("w16") != std::string::npos);
      tr.values = {loss};
      trials.push_back(tr);
    }
  }
}

TEST(Pareto, RanksFrontsAndCrowdsTheirMembers) {
  const std::vector<std::vector<double>> p = {{1, 5}, {2, 3}, {4, 1}, {3, 4}, {5, 5}, {2, 3}};
  const auto r = nondominated_ranks(p);
  EXPECT_EQ(r, (std::vector<int>{0, 0, 0, 1, 2, 0}));
  const auto c = crowding_distances(p, r);
  EXPECT_TRUE(std::isinf(c[0]));
  EXPECT_TRUE(std::isinf(c[2]));
  EXPECT_FALSE(std::isinf(c[1]) && std::isinf(c[5]));
}

TEST(EvolutionController, NsgaSelectionKeepsTheParetoFrontInThePopulation) {
  // Two objectives: maximize the synthetic quality, minimize the number of non-none edges (a size proxy).
  const SyntheticCellScore score(nb201(), 6);
  const search::SearchSpace ss(score.space().params());
  auto t = make_nas_tuner("nas_evolution", {{"population", 10}, {"sample_size", 3}}, 2);
  std::vector<search::Trial> trials;
  for (int i = 0; i < 60; ++i) {
    tuners::History h;
    h.space = &ss;
    h.objectives = {{"quality", search::Direction::Maximize}, {"edges", search::Direction::Minimize}};
    for (const auto& tr : trials) h.trials.push_back(&tr);
    auto p = t->ask(h, i);
    search::Trial tr;
    tr.number = i;
    tr.config = p.config;
    tr.attrs = p.attrs;
    const Arch a = score.space().from_config(tr.config);
    double edges = 0;
    for (int op : a) edges += op != 0;
    tr.values = {score.quality(a), edges};
    tr.state = search::TrialState::Complete;
    trials.push_back(tr);
  }
  // After the start-up, children descend from the elite: most are one edit from a first-front member so far.
  std::vector<std::vector<double>> pts;
  int near_front = 0;
  for (int i = 0; i < 60; ++i) {
    if (i >= 10) {
      const auto r = nondominated_ranks(pts);
      const Arch child = score.space().from_config(trials[i].config);
      for (int j = 0; j < i; ++j) {
        if (r[j] > 1) continue;
        const Arch par = score.space().from_config(trials[j].config);
        int diff = 0;
        for (size_t e = 0; e < par.size(); ++e) diff += par[e] != child[e];
        if (diff == 1) {
          ++near_front;
          break;
        }
      }
    }
    pts.push_back({-trials[i].values[0], trials[i].values[1]});
  }
  EXPECT_GE(near_front, 35);
}

}  // namespace
}  // namespace kestrel::nas
