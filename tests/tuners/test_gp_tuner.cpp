// Tests of GpTuner as a whole: the shared tuner conformance suite, its options, optimization quality on a quadratic
// and on Branin within stated budgets, running trials, ignored failures and multi-objective studies.
#include <cmath>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tests/tuners/tuner_conformance.hpp"
#include "tuners/gp.hpp"

namespace kestrel::tuners::testing {

INSTANTIATE_TEST_SUITE_P(Gp, TunerConformance, ::testing::Values(TunerCase{"gp", {}, true, true, 40, 0.05}),
                         case_name);
// The same contract with stagnation restarts made frequent (short patience, half the asks): restart segments are
// rebuilt from the trials' attrs, so a fresh instance must still reproduce every proposal.
INSTANTIATE_TEST_SUITE_P(
    GpRestarts, TunerConformance,
    ::testing::Values(TunerCase{
        "gp", {{"restart_patience", 4}, {"restart_share", 0.5}, {"restart_tol", 0.5}}, true, true, 40, 0.05}),
    case_name);

namespace {

double branin(double x1, double x2) {
  const double a = 1, b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, r = 6, s = 10, t = 1 / (8 * M_PI);
  return a * std::pow(x2 - b * x1 * x1 + c * x1 - r, 2) + s * (1 - t) * std::cos(x1) + s;
}
constexpr double kBraninMin = 0.397887357729738;

SearchSpace branin_space() {
  return SearchSpace({ParamSpec::uniform("x1", -5, 10), ParamSpec::uniform("x2", 0, 15)});
}

double run_branin(uint64_t seed, int budget) {
  MiniStudy st(branin_space());
  GpTuner t(GpParams{}, seed);
  for (int i = 0; i < budget; ++i) {
    Trial& tr = st.ask(t);
    st.tell(tr, branin(search::as_double(tr.config.at("x1")), search::as_double(tr.config.at("x2"))));
  }
  return *st.best() - kBraninMin;
}

// Restart segment of a trial (GpTuner::kAttrRestart), 0 when it has none.
int64_t segment_of(const Trial& t) {
  auto it = t.attrs.find(GpTuner::kAttrRestart);
  return it == t.attrs.end() ? 0 : std::stoll(it->second);
}

// A history of `n` COMPLETE trials of the 2-d unit square at seeded points with the given values.
void fill(MiniStudy& st, int n, const std::function<double(int)>& value) {
  for (int i = 0; i < n; ++i) {
    GpTuner random_points(GpParams::from_json({{"n_startup_trials", 1000}, {"restart_patience", 0}}), 11);
    Trial& tr = st.ask(random_points);  // the Sobol' start-up design: distinct points, no model
    st.tell(tr, value(i));
  }
}

}  // namespace

TEST(GpTuner, StagnationRestartTriggersOnAStagnantHistoryAndNotOnAnImprovingOne) {
  SearchSpace s({ParamSpec::uniform("x", 0, 1), ParamSpec::uniform("y", 0, 1)});
  nlohmann::json on = {{"restart_patience", 10}, {"restart_tol", 0.05}, {"restart_share", 1.0}};
  // Stagnant: the best value (trial 3) is never beaten in the 26 trials after it.
  MiniStudy flat(s);
  fill(flat, 30, [](int i) { return i == 3 ? 0.0 : 1.0 + 0.01 * (i % 7); });
  Proposal p = GpTuner(GpParams::from_json(on), 5).ask(flat.history(), flat.next_number());
  ASSERT_NO_THROW(s.check(p.config));
  EXPECT_EQ(p.attrs.count(GpTuner::kAttrRestart), 1u);
  EXPECT_EQ(p.attrs[GpTuner::kAttrRestart], "1");
  // Improving: every trial beats the previous best by a wide margin, so no restart.
  MiniStudy down(s);
  fill(down, 30, [](int i) { return -1.0 * i; });
  Proposal q = GpTuner(GpParams::from_json(on), 5).ask(down.history(), down.next_number());
  EXPECT_EQ(q.attrs.count(GpTuner::kAttrRestart), 0u);
  // The same stagnant history with the default options (mechanism off), or with one improvement inside the
  // window: no restart.
  Proposal r = GpTuner(GpParams{}, 5).ask(flat.history(), flat.next_number());
  EXPECT_EQ(r.attrs.count(GpTuner::kAttrRestart), 0u);
  MiniStudy late(s);
  fill(late, 30, [](int i) { return i == 3 ? 0.0 : i == 25 ? -1.0 : 1.0 + 0.01 * (i % 7); });
  Proposal t = GpTuner(GpParams::from_json(on), 5).ask(late.history(), late.next_number());
  EXPECT_EQ(t.attrs.count(GpTuner::kAttrRestart), 0u);
}

TEST(GpTuner, StagnationRestartsOpenNewSegmentsWithValidProposalsOnEveryParameterKind) {
  // A constant objective never improves: after the start-up and the patience, every ask (share 1) belongs to a
  // restart segment; each segment is itself stagnant after n_startup + patience trials, so a new one opens.
  SearchSpace s = every_kind_space();
  nlohmann::json on = {{"restart_patience", 5}, {"restart_share", 1.0}, {"n_candidates", 128}};
  MiniStudy st(s);
  GpTuner t(GpParams::from_json(on), 3);
  int64_t last_segment = 0;
  int restart_trials = 0;
  for (int i = 0; i < 60; ++i) {
    Trial& tr = st.ask(t);
    ASSERT_NO_THROW(s.check(tr.config)) << "trial " << i;
    int64_t seg = segment_of(tr);
    EXPECT_GE(seg, last_segment) << "segments only move forward (trial " << i << ")";
    last_segment = std::max(last_segment, seg);
    restart_trials += seg > 0;
    st.tell(tr, 1.0);
  }
  EXPECT_GE(last_segment, 2);
  EXPECT_GE(restart_trials, 30);
  std::set<std::string> keys;
  for (const auto& tr : st.trials()) keys.insert(s.key(tr->config));
  EXPECT_EQ(keys.size(), st.trials().size()) << "restart segments must not repeat earlier configurations";
}

TEST(GpTuner, StagnationRestartProposalsAreReproducedFromTheStoredHistory) {
  // A two-basin function: broad local minimum 0 at (0.8, 0.8), narrow global minimum -1 at (0.15, 0.2). Every ask of
  // a fresh instance (as after a resume) equals the long-lived instance's proposal, attrs included.
  auto f = [](double x, double y) {
    return -std::exp(-((x - 0.15) * (x - 0.15) + (y - 0.2) * (y - 0.2)) / 0.002) +
           ((x - 0.8) * (x - 0.8) + (y - 0.8) * (y - 0.8));
  };
  nlohmann::json on = {{"restart_patience", 6}, {"restart_share", 0.5}};
  SearchSpace s({ParamSpec::uniform("x", 0, 1), ParamSpec::uniform("y", 0, 1)});
  MiniStudy st(s);
  GpTuner t(GpParams::from_json(on), 21);
  int restart_trials = 0;
  for (int i = 0; i < 45; ++i) {
    Proposal fresh = GpTuner(GpParams::from_json(on), 21).ask(st.history(), st.next_number());
    Trial& tr = st.ask(t);
    ASSERT_EQ(s.key(fresh.config), s.key(tr.config)) << "trial " << i;
    ASSERT_EQ(fresh.attrs, tr.attrs) << "trial " << i;
    restart_trials += segment_of(tr) > 0;
    st.tell(tr, f(search::as_double(tr.config.at("x")), search::as_double(tr.config.at("y"))));
  }
  EXPECT_GT(restart_trials, 0) << "the run should have stagnated at least once";
}

TEST(GpTuner, ParamsHaveDocumentedDefaultsAndRejectBadValues) {
  GpParams p = GpParams::from_json(nlohmann::json::object());
  EXPECT_EQ(p.acquisition, "log_ei");
  EXPECT_EQ(p.n_startup_trials, -1);
  EXPECT_EQ(p.pending, "liar_mean");
  GpParams q = GpParams::from_json({{"acquisition", "ucb"}, {"ucb_kappa", 3.0}, {"n_startup_trials", 8}});
  EXPECT_EQ(q.acquisition, "ucb");
  EXPECT_EQ(q.ucb_kappa, 3.0);
  EXPECT_EQ(q.n_startup_trials, 8);
  EXPECT_THROW(GpParams::from_json({{"acquisition", "thompson"}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"pending", "maybe"}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"n_candidates", 0}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"n_candidates", "many"}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"lengthscale", 1.0}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"output_warp", "log"}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"restart_patience", -2}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"restart_tol", -0.1}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"restart_share", 0.0}}), ConfigError);
  EXPECT_THROW(GpParams::from_json({{"restart_share", 1.5}}), ConfigError);
  EXPECT_EQ(GpParams::from_json({{"restart_share", 0.25}}).restart_share, 0.25);
  EXPECT_EQ(p.restart_patience, 0);  // stagnation restarts are an option (see GpParams)
  EXPECT_EQ(p.restart_share, 0.75);
  EXPECT_EQ(p.output_warp, "yeo_johnson");
  EXPECT_EQ(make_tuner("gp", nlohmann::json::object(), 1)->name(), "gp");
}

TEST(GpTuner, StartupTrialsFollowTheSobolDesignThenTheModelTakesOver) {
  // With n_startup_trials = 4 the first four proposals depend on the trial number only (not on the values told).
  SearchSpace s = branin_space();
  MiniStudy a(s), b(s);
  GpTuner ta(GpParams::from_json({{"n_startup_trials", 4}}), 5), tb(GpParams::from_json({{"n_startup_trials", 4}}), 5);
  for (int i = 0; i < 4; ++i) {
    Trial& x = a.ask(ta);
    Trial& y = b.ask(tb);
    EXPECT_EQ(s.key(x.config), s.key(y.config));
    a.tell(x, 1.0 * i);
    b.tell(y, -3.0 * i);  // different values
  }
  // From the fifth trial the model sees different data and proposes differently.
  EXPECT_NE(s.key(a.ask(ta).config), s.key(b.ask(tb).config));
}

TEST(GpTuner, FindsTheOptimumOfA2dQuadraticWithin20Trials) {
  // Budget: 20 trials (5 Sobol + 15 model-based); claim: best squared distance below 1e-3 on [-5,5]^2 for every seed.
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    MiniStudy st(SearchSpace({ParamSpec::uniform("x", -5, 5), ParamSpec::uniform("y", -5, 5)}));
    GpTuner t(GpParams{}, seed);
    for (int i = 0; i < 20; ++i) {
      Trial& tr = st.ask(t);
      double x = search::as_double(tr.config.at("x")), y = search::as_double(tr.config.at("y"));
      st.tell(tr, (x - 1.7) * (x - 1.7) + (y + 3.1) * (y + 3.1));
    }
    EXPECT_LT(*st.best(), 1e-3) << "seed " << seed;
  }
}

TEST(GpTuner, FindsTheOptimumRegionOfBraninWithin30Trials) {
  // Budget: 30 trials; claim: simple regret below 0.01 (f* = 0.397887, three global minima) for each of 3 seeds.
  for (uint64_t seed = 1; seed <= 3; ++seed) EXPECT_LT(run_branin(seed, 30), 1e-2) << "seed " << seed;
}

TEST(GpTuner, RunningTrialsPushParallelProposalsApart) {
  auto proposals = [](const std::string& pending) {
    MiniStudy st(branin_space());
    GpTuner t(GpParams::from_json({{"pending", pending}}), 3);
    for (int i = 0; i < 12; ++i) {
      Trial& tr = st.ask(t);
      st.tell(tr, branin(search::as_double(tr.config.at("x1")), search::as_double(tr.config.at("x2"))));
    }
    std::vector<std::pair<double, double>> pts;
    for (int i = 0; i < 4; ++i) {
      Trial& tr = st.ask(t);  // left RUNNING, as with 4 parallel workers
      pts.emplace_back((search::as_double(tr.config.at("x1")) + 5) / 15, search::as_double(tr.config.at("x2")) / 15);
    }
    double closest = 1e9;
    for (size_t i = 0; i < pts.size(); ++i)
      for (size_t j = i + 1; j < pts.size(); ++j)
        closest = std::min(closest, std::hypot(pts[i].first - pts[j].first, pts[i].second - pts[j].second));
    return closest;
  };
  // Without fantasies all four workers chase the same acquisition maximum. Optimistic fantasies (Kriging believer,
  // liar = best) move them apart only a little (the believed value keeps the neighbourhood attractive); a constant
  // liar at the mean or the worst value spreads them over the space (the default, liar_mean).
  EXPECT_LT(proposals("ignore"), 1e-4);
  EXPECT_GT(proposals("believer"), 1e-3);
  EXPECT_GT(proposals("liar_min"), 1e-3);
  EXPECT_GT(proposals("liar_mean"), 3e-2);
  EXPECT_GT(proposals("liar_max"), 3e-2);
}

TEST(GpTuner, SubsetRuleForLargeHistoriesStaysDeterministicAndKeepsTheBest) {
  // Tiny caps make the bounded-cost path (best half + seeded subsample, for the model and for the fit) run from the
  // 21st trial on: proposals must still be reproducible by a fresh instance and keep improving on Branin.
  nlohmann::json caps = {{"max_model_points", 20}, {"max_fit_points", 10}};
  MiniStudy st(branin_space());
  GpTuner t(GpParams::from_json(caps), 8);
  for (int i = 0; i < 45; ++i) {
    if (i >= 30) {
      GpTuner fresh(GpParams::from_json(caps), 8);
      Proposal p = fresh.ask(st.history(), st.next_number());
      Trial& tr = st.ask(t);
      ASSERT_EQ(st.space().key(p.config), st.space().key(tr.config)) << "at trial " << i;
      st.tell(tr, branin(search::as_double(tr.config.at("x1")), search::as_double(tr.config.at("x2"))));
      continue;
    }
    Trial& tr = st.ask(t);
    st.tell(tr, branin(search::as_double(tr.config.at("x1")), search::as_double(tr.config.at("x2"))));
  }
  EXPECT_LT(*st.best() - kBraninMin, 1e-2);
}

TEST(GpTuner, FailedAndPrunedTrialsDoNotChangeTheProposal) {
  MiniStudy st(branin_space());
  GpTuner t(GpParams{}, 4);
  for (int i = 0; i < 10; ++i) {
    Trial& tr = st.ask(t);
    st.tell(tr, branin(search::as_double(tr.config.at("x1")), search::as_double(tr.config.at("x2"))));
  }
  History h = st.history();
  Trial failed, pruned;
  failed.number = 100;
  failed.state = TrialState::Failed;
  failed.config = {{"x1", Value{0.0}}, {"x2", Value{1.0}}};
  pruned.number = 101;
  pruned.state = TrialState::Pruned;
  pruned.config = {{"x1", Value{3.0}}, {"x2", Value{2.0}}};
  pruned.values = {-1000.0};  // a partial value must not be mistaken for a result
  History h2 = h;
  h2.trials.push_back(&failed);
  h2.trials.push_back(&pruned);
  GpTuner fresh(GpParams{}, 4);
  EXPECT_EQ(st.space().key(t.ask(h, 10).config), st.space().key(fresh.ask(h2, 10).config));
}

TEST(GpTuner, MultiObjectiveStudiesUseParegoAndStayValid) {
  SearchSpace s({ParamSpec::uniform("x", 0, 1), ParamSpec::uniform("y", 0, 1)});
  std::vector<std::unique_ptr<Trial>> trials;
  GpTuner t(GpParams{}, 2);
  std::set<std::string> keys;
  for (int i = 0; i < 20; ++i) {
    History h;
    h.space = &s;
    h.objectives = {search::Objective{"f1", search::Direction::Minimize},
                    search::Objective{"f2", search::Direction::Maximize}};
    for (const auto& tr : trials) h.trials.push_back(tr.get());
    Proposal p = t.ask(h, i);
    ASSERT_NO_THROW(s.check(p.config));
    keys.insert(s.key(p.config));
    auto tr = std::make_unique<Trial>();
    tr->number = i;
    tr->state = TrialState::Complete;
    double x = search::as_double(p.config.at("x")), y = search::as_double(p.config.at("y"));
    tr->values = {x * x + y, -(1 - x) * (1 - x) - y};  // conflicting in x; both prefer small y
    tr->config = p.config;
    trials.push_back(std::move(tr));
  }
  EXPECT_EQ(keys.size(), 20u);
  // Both objectives prefer y = 0: the model-based trials should mostly sit at small y.
  int small_y = 0;
  for (size_t i = 10; i < trials.size(); ++i) small_y += search::as_double(trials[i]->config.at("y")) < 0.2;
  EXPECT_GE(small_y, 7);
}

TEST(GpTuner, IntegerOnlySpaceNeverRepeatsAConfigurationUntilExhausted) {
  SearchSpace s({ParamSpec::integer("a", 0, 3), ParamSpec::integer("b", 0, 2)});  // 12 configurations
  MiniStudy st(s);
  GpTuner t(GpParams{}, 1);
  std::set<std::string> keys;
  for (int i = 0; i < 12; ++i) {
    Trial& tr = st.ask(t);
    EXPECT_TRUE(keys.insert(s.key(tr.config)).second) << "repeat at trial " << i << ": " << s.key(tr.config);
    st.tell(tr, std::pow(search::as_double(tr.config.at("a")) - 2, 2) + search::as_double(tr.config.at("b")));
  }
  EXPECT_THROW(t.ask(st.history(), st.next_number()), SpaceExhausted);
}

TEST(GpTuner, InactiveConditionalParameterDoesNotHideTheActiveOptimum) {
  // kind = "a" activates xa (optimum 0 at xa = 0.8), kind = "b" activates xb (always >= 0.5). The model must learn
  // that branch a is better and then tune xa, despite half the trials carrying an imputed xa.
  auto xa = ParamSpec::uniform("xa", 0, 1);
  xa.condition = search::Condition{"kind", {Value{std::string("a")}}};
  auto xb = ParamSpec::uniform("xb", 0, 1);
  xb.condition = search::Condition{"kind", {Value{std::string("b")}}};
  SearchSpace s({ParamSpec::categorical("kind", {Value{std::string("a")}, Value{std::string("b")}}), xa, xb});
  MiniStudy st(s);
  GpTuner t(GpParams{}, 6);
  for (int i = 0; i < 25; ++i) {
    Trial& tr = st.ask(t);
    ASSERT_NO_THROW(s.check(tr.config));
    double v = std::get<std::string>(tr.config.at("kind")) == "a"
                   ? std::pow(search::as_double(tr.config.at("xa")) - 0.8, 2)
                   : 0.5 + search::as_double(tr.config.at("xb"));
    st.tell(tr, v);
  }
  EXPECT_LT(*st.best(), 1e-3);
}

}  // namespace kestrel::tuners::testing
