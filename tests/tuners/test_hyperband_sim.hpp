// A minimal in-memory stand-in for Study + Store used by the multi-fidelity tests: trials live in a deque (stable
// addresses), proposals become RUNNING trials with the budget attr exactly as Study::ask writes it.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "search/space.hpp"
#include "search/trial.hpp"
#include "tuners/tuner.hpp"

namespace kestrel::tuners::testing {

struct Sim {
  search::SearchSpace space;
  std::vector<search::Objective> objectives{search::Objective{}};
  std::deque<search::Trial> trials;

  History history() const {
    History h;
    h.space = &space;
    h.objectives = objectives;
    for (const auto& t : trials) h.trials.push_back(&t);
    return h;
  }

  // Adds a trial by hand (as Study::enqueue would), RUNNING.
  search::Trial& add(const search::Config& c, std::map<std::string, std::string> attrs = {}) {
    search::Trial t;
    t.number = static_cast<int64_t>(trials.size());
    t.id = t.number + 1000;
    t.state = search::TrialState::Running;
    t.config = c;
    t.attrs = std::move(attrs);
    trials.push_back(std::move(t));
    return trials.back();
  }

  // tuner.ask() on the current history, recorded as Study::ask records it.
  search::Trial& ask(Tuner& tuner) {
    History h = history();
    Proposal p = tuner.ask(h, static_cast<int64_t>(trials.size()));
    auto attrs = p.attrs;
    if (p.budget) attrs["budget"] = search::to_string(search::Value{*p.budget});
    return add(p.config, attrs);
  }

  static double budget(const search::Trial& t) { return std::stod(t.attrs.at("budget")); }
  static void complete(search::Trial& t, double v) {
    t.state = search::TrialState::Complete;
    t.values = {v};
  }
  static void fail(search::Trial& t) { t.state = search::TrialState::Failed; }
};

}  // namespace kestrel::tuners::testing
