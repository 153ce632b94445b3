// The tuner conformance suite (behaviour every Tuner must show), instantiated here for the tuners of tuners/;
// gp instantiates it in its own file. Budgets are per tuner: what each needs on a 3-D quadratic.
#include "tests/tuners/tuner_conformance.hpp"

namespace kestrel::tuners::testing {

TEST_P(TunerConformance, ProposalsAlwaysPassSpaceCheckOnEveryParameterKind) {
  MiniStudy st(space());
  auto t = make();
  run(st, *t, 40, 7);
  for (const auto& tr : st.trials()) {
    EXPECT_NO_THROW(st.space().check(tr->config)) << "trial " << tr->number << ": " << st.space().key(tr->config);
    EXPECT_FALSE(has_nan(tr->config));
  }
}

TEST_P(TunerConformance, SameSeedAndHistoryGiveTheSameProposal) {
  MiniStudy st(space());
  auto t = make(11);
  run(st, *t, 25, 6);
  auto a = make(11), b = make(11);
  auto h = st.history();
  auto pa = a->ask(h, st.next_number()), pb = b->ask(h, st.next_number());
  EXPECT_EQ(st.space().key(pa.config), st.space().key(pb.config));
  EXPECT_EQ(pa.attrs, pb.attrs);
}

TEST_P(TunerConformance, FreshInstanceOnTheSameHistoryProposesWhatTheRunningOneDoes) {
  MiniStudy st(space());
  auto t = make(3);
  for (int i = 0; i < 30; ++i) {
    auto fresh = make(3);
    auto expected = fresh->ask(st.history(), st.next_number());
    Trial& tr = st.ask(*t);
    ASSERT_EQ(st.space().key(expected.config), st.space().key(tr.config)) << "at trial " << i;
    ASSERT_EQ(expected.attrs, tr.attrs) << "at trial " << i;
    if (i % 9 == 8)
      st.fail(tr);
    else
      st.tell(tr, cube_loss(st.space(), tr.config));
  }
}

TEST_P(TunerConformance, DifferentSeedsGiveDifferentProposals) {
  std::set<std::string> firsts;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    MiniStudy st(space());
    auto t = make(seed);
    run(st, *t, 3);
    std::string k;
    for (const auto& tr : st.trials()) k += st.space().key(tr->config) + "|";
    firsts.insert(k);
  }
  EXPECT_GT(firsts.size(), 1u);
}

TEST_P(TunerConformance, HandlesEmptyAndAllFailedHistories) {
  MiniStudy st(space());
  auto t = make();
  for (int i = 0; i < 30; ++i) {
    Trial& tr = st.ask(*t);
    EXPECT_NO_THROW(st.space().check(tr.config));
    EXPECT_FALSE(has_nan(tr.config));
    st.fail(tr);
  }
}

TEST_P(TunerConformance, NonFiniteValuesNeitherCrashNorLeakIntoProposals) {
  // An evaluator may report NaN or an infinity as a COMPLETE value; the tuner must stay valid and NaN-free.
  MiniStudy st(space());
  auto t = make(13);
  for (int i = 0; i < 30; ++i) {
    Trial& tr = st.ask(*t);
    EXPECT_NO_THROW(st.space().check(tr.config));
    EXPECT_FALSE(has_nan(tr.config));
    double v = cube_loss(st.space(), tr.config);
    if (i % 4 == 1) v = std::nan("");
    if (i % 4 == 2) v = (i % 8 == 2) ? INFINITY : -INFINITY;
    st.tell(tr, v);
  }
}

TEST_P(TunerConformance, RunningTrialsAreSeenAndProposalsStayValid) {
  // Many trials in flight at once (parallel workers): the tuner must keep proposing valid, mostly distinct points.
  MiniStudy st(space());
  auto t = make(5);
  run(st, *t, 12);
  std::set<std::string> keys;
  for (int i = 0; i < 8; ++i) {
    Trial& tr = st.ask(*t);  // left RUNNING
    EXPECT_NO_THROW(st.space().check(tr.config));
    keys.insert(st.space().key(tr.config));
  }
  EXPECT_GE(keys.size(), 6u) << "parallel workers would mostly evaluate the same configuration";
}

TEST_P(TunerConformance, MaximizeIsTheMirrorOfMinimize) {
  // Same loss, negated and maximized: a correct tuner proposes exactly the same sequence.
  MiniStudy mn(space(), search::Direction::Minimize), mx(space(), search::Direction::Maximize);
  auto a = make(9), b = make(9);
  for (int i = 0; i < 25; ++i) {
    Trial& ta = mn.ask(*a);
    Trial& tb = mx.ask(*b);
    ASSERT_EQ(mn.space().key(ta.config), mx.space().key(tb.config)) << "at trial " << i;
    double v = cube_loss(mn.space(), ta.config);
    mn.tell(ta, v);
    mx.tell(tb, -v);
  }
}

TEST_P(TunerConformance, FindsTheOptimumRegionOfAQuadraticWithinItsBudget) {
  const auto& c = GetParam();
  std::vector<ParamSpec> ps;
  if (c.continuous) {
    for (int i = 0; i < 3; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), -5.0, 5.0));
  } else {
    for (int i = 0; i < 3; ++i) {
      auto p = ParamSpec::uniform("x" + std::to_string(i), -5.0, 5.0);
      p.step = 1.25;  // 9 values per axis, 729 configurations
      ps.push_back(p);
    }
  }
  const double centre[3] = {1.25, -2.5, 0.0};  // on the step grid, away from the centre of the box
  int successes = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    MiniStudy st{SearchSpace(ps)};
    auto t = make(seed);
    for (int i = 0; i < c.quadratic_budget; ++i) {
      Trial& tr = st.ask(*t);
      double v = 0;
      for (int d = 0; d < 3; ++d) {
        double x = search::as_double(tr.config.at("x" + std::to_string(d)));
        v += (x - centre[d]) * (x - centre[d]);
      }
      st.tell(tr, v);
    }
    if (*st.best() <= c.quadratic_tol) ++successes;
  }
  // Two of three seeds: the claim is about the tuner, not about one lucky stream.
  EXPECT_GE(successes, 2) << c.kind << " did not reach " << c.quadratic_tol << " within " << c.quadratic_budget;
}

TEST_P(TunerConformance, RefusesUnknownOptionsNamingTheValidOnes) {
  nlohmann::json p = GetParam().params;
  p["no_such_option"] = 1;
  try {
    make_tuner(GetParam().kind, p, 1);
    FAIL() << "an unknown option was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_option"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("valid"), std::string::npos) << e.what();
  }
}


// Random search on [-5,5]^3 hits the unit ball around the optimum with probability 0.0042 per trial (volume 4.19 of 1000), so 1500 trials: its
// budget reflects that; grid needs the whole (finite) space.
INSTANTIATE_TEST_SUITE_P(Basic, TunerConformance,
                         ::testing::Values(TunerCase{"random", {}, true, true, 1500, 1.0},
                                           TunerCase{"sobol", {}, true, true, 1500, 1.0},
                                           TunerCase{"grid", {}, true, false, 729, 1e-12}),
                         case_name);

// TPE on a 3-D quadratic: 10 random start-up trials, then the model; both the joint (default) and the
// independent (Optuna's default) variants, and the stepped (discrete-kernel) space.
INSTANTIATE_TEST_SUITE_P(Tpe, TunerConformance,
                         ::testing::Values(TunerCase{"tpe", {}, true, true, 150, 0.05},
                                           TunerCase{"tpe", {{"multivariate", false}}, true, true, 200, 0.05},
                                           TunerCase{"tpe", {}, true, false, 150, 1e-12}),
                         case_name);

// CMA-ES: no categorical parameters (refused); the quadratic needs a few generations of 7.
INSTANTIATE_TEST_SUITE_P(Cmaes, TunerConformance,
                         ::testing::Values(TunerCase{"cmaes", {}, false, true, 150, 0.05}), case_name);

}  // namespace kestrel::tuners::testing
