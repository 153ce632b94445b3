// The tuner conformance suite's fixture and helpers (the TEST_P bodies live in test_conformance.cpp, one TU).
// A new tuner joins with one line in its own test file:
//   INSTANTIATE_TEST_SUITE_P(Gp, TunerConformance, ::testing::Values(TunerCase{"gp", {}, true, true, 40, 0.05}), case_name);
#pragma once

#include <cmath>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "common/error.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::tuners::testing {

using search::Config;
using search::ParamSpec;
using search::SearchSpace;
using search::Trial;
using search::TrialState;
using search::Value;

// An in-memory study: trials in number order, with helpers to ask, run and tell the way the engine does.
class MiniStudy {
 public:
  explicit MiniStudy(SearchSpace space, search::Direction dir = search::Direction::Minimize)
      : space_(std::move(space)), dir_(dir) {}

  History history() const {
    History h;
    h.space = &space_;
    h.objectives = {search::Objective{"value", dir_}};
    for (const auto& t : trials_) h.trials.push_back(t.get());
    return h;
  }
  int64_t next_number() const { return static_cast<int64_t>(trials_.size()); }

  // Asks `tuner` for trial next_number() and records it as RUNNING.
  Trial& ask(Tuner& tuner) {
    Proposal p = tuner.ask(history(), next_number());
    auto t = std::make_unique<Trial>();
    t->number = next_number();
    t->id = t->number;
    t->state = TrialState::Running;
    t->config = std::move(p.config);
    t->attrs = std::move(p.attrs);
    trials_.push_back(std::move(t));
    return *trials_.back();
  }
  void tell(Trial& t, double value) {
    t.state = TrialState::Complete;
    t.values = {value};
  }
  void fail(Trial& t) {
    t.state = TrialState::Failed;
    t.fail_reason = "test";
  }
  const SearchSpace& space() const { return space_; }
  const std::deque<std::unique_ptr<Trial>>& trials() const { return trials_; }
  std::optional<double> best() const {
    std::optional<double> b;
    for (const auto& t : trials_)
      if (t->state == TrialState::Complete && (!b || t->values[0] < *b)) b = t->values[0];
    return b;
  }

 private:
  SearchSpace space_;
  search::Direction dir_;
  std::deque<std::unique_ptr<Trial>> trials_;
};

// A space with every parameter kind: log float, stepped float, int, log int, categorical of strings, numbers and
// bools, fixed, and a conditional child (`momentum` active only when opt == "sgd").
inline SearchSpace every_kind_space(bool with_categorical = true) {
  std::vector<ParamSpec> ps;
  ps.push_back(ParamSpec::uniform("lr", 1e-5, 1e-1, true));
  auto stepped = ParamSpec::uniform("dropout", 0.0, 0.5);
  stepped.step = 0.05;
  ps.push_back(stepped);
  ps.push_back(ParamSpec::integer("layers", 1, 8));
  ps.push_back(ParamSpec::integer("width", 16, 1024, true));
  ps.push_back(ParamSpec::uniform("x", -3.0, 2.0));
  ps.push_back(ParamSpec::constant("epochs", Value{int64_t{10}}));
  if (with_categorical) {
    ps.push_back(ParamSpec::categorical("opt", {Value{std::string("sgd")}, Value{std::string("adam")},
                                                Value{std::string("rmsprop")}}));
    ps.push_back(ParamSpec::categorical("batch", {Value{int64_t{32}}, Value{int64_t{64}}, Value{2.5}}));
    ps.push_back(ParamSpec::categorical("nesterov", {Value{true}, Value{false}}));
    auto momentum = ParamSpec::uniform("momentum", 0.0, 0.99);
    momentum.condition = search::Condition{"opt", {Value{std::string("sgd")}}};
    ps.push_back(momentum);
  } else {
    auto momentum = ParamSpec::uniform("momentum", 0.0, 0.99);
    momentum.condition = search::Condition{"layers", {Value{int64_t{1}}, Value{int64_t{2}}}};
    ps.push_back(momentum);
  }
  return SearchSpace(ps);
}

// A smooth loss on any space: squared distance of the unit-cube encoding to a point away from the centre.
inline double cube_loss(const SearchSpace& s, const Config& c) {
  auto u = s.encode(c);
  double v = 0;
  for (size_t i = 0; i < u.size(); ++i) v += (u[i] - 0.3 - 0.04 * static_cast<double>(i % 5)) * (u[i] - 0.3 - 0.04 * static_cast<double>(i % 5));
  return v;
}

// What one tuner kind is tested with.
struct TunerCase {
  std::string kind;
  nlohmann::json params = nlohmann::json::object();
  bool categorical = true;   // handles categorical parameters (otherwise must refuse them with ConfigError)
  bool continuous = true;    // handles continuous parameters (otherwise must refuse them with ConfigError)
  int quadratic_budget = 60; // trials to reach the optimum region of the quadratic below
  double quadratic_tol = 0.05;  // required best value of sum_i (x_i - c_i)^2 on [-5, 5]^3 (stepped by 1.25 when
                                // the tuner is not continuous)
};

inline std::ostream& operator<<(std::ostream& os, const TunerCase& c) { return os << c.kind << c.params.dump(); }
inline std::string case_name(const ::testing::TestParamInfo<TunerCase>& info) {
  std::string n = info.param.kind;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n + "_" + std::to_string(info.index);
}

class TunerConformance : public ::testing::TestWithParam<TunerCase> {
 protected:
  std::unique_ptr<Tuner> make(uint64_t seed = 7) const { return make_tuner(GetParam().kind, GetParam().params, seed); }
  SearchSpace space() const {
    if (!GetParam().continuous) {
      auto s = ParamSpec::uniform("dropout", 0.0, 0.5);
      s.step = 0.05;
      return SearchSpace({ParamSpec::integer("layers", 1, 8), s, ParamSpec::integer("width", 16, 64, true),
                          ParamSpec::categorical("opt", {Value{std::string("sgd")}, Value{std::string("adam")}}),
                          ParamSpec::constant("epochs", Value{int64_t{10}})});
    }
    return every_kind_space(GetParam().categorical);
  }
  // Runs `n` sequential ask/tell rounds with cube_loss, failing every `fail_every`-th trial when > 0.
  void run(MiniStudy& st, Tuner& t, int n, int fail_every = 0) {
    for (int i = 0; i < n; ++i) {
      Trial& tr = st.ask(t);
      if (fail_every > 0 && (i % fail_every) == fail_every - 1)
        st.fail(tr);
      else
        st.tell(tr, cube_loss(st.space(), tr.config));
    }
  }
};

inline bool has_nan(const Config& c) {
  for (const auto& [k, v] : c)
    if (auto d = std::get_if<double>(&v); d && !std::isfinite(*d)) return true;
  return false;
}

}  // namespace kestrel::tuners::testing
