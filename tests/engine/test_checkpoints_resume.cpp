// Resume through a real store: a Hyperband, BOHB, ASHA or PBT study closed mid-bracket / mid-generation (or a GP study
// inside a stagnation-restart segment) and reopened from its SQLite file proposes exactly what an uninterrupted study
// with the same seed proposes.
#include <gtest/gtest.h>

#include "engine/study.hpp"
#include "tests/engine/engine_test_util.hpp"

namespace kestrel::engine {
namespace {

using namespace kestrel::engine::testing;

StudyOptions options(const std::string& kind, const nlohmann::json& params) {
  StudyOptions o;
  o.name = "mf";
  o.space = SearchSpace({search::ParamSpec::uniform("x", 0, 1), search::ParamSpec::integer("n", 1, 5)});
  o.tuner = kind;
  o.tuner_params = params;
  o.seed = 9;
  o.heartbeat_interval = 0;
  return o;
}

// Asks and tells `count` trials (fewer if the tuner is exhausted); the value depends on config and budget.
void run(Study& study, int count, std::vector<std::string>& log) {
  for (int k = 0; k < count; ++k) {
    TrialHandle h;
    try {
      h = study.ask();
    } catch (const tuners::SpaceExhausted&) {
      return;
    }
    std::string line = search::config_to_json(h.config()).dump();
    for (const auto& [key, v] : h.record().attrs) line += " " + key + "=" + v;
    log.push_back(line);
    const double b = h.budget().value_or(1.0);
    h.tell((h.get_double("x") - 0.4) * (h.get_double("x") - 0.4) + 0.1 * static_cast<double>(h.get_int("n")) / b);
  }
}

TEST(CheckpointsResume, ReopenedStudiesRepeatTheUninterruptedDecisions) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"hyperband", {{"max_resource", 27}, {"eta", 3}}},
      {"bohb", {{"max_resource", 27}, {"eta", 3}}},
      {"asha", {{"max_resource", 27}, {"eta", 3}}},
      {"pbt", {{"population", 4}, {"interval", 2}, {"total_steps", 12}}},
      {"pbt", {{"population", 4}, {"interval", 2}, {"total_steps", 12}, {"mode", "async"}}},
      // Restart segments live in the trials' attrs (gp_restart), so they must survive the store round trip.
      {"gp", {{"restart_patience", 5}, {"restart_share", 0.5}, {"n_candidates", 256}}},
  };
  for (const auto& [kind, params] : cases) {
    TempDir d;
    std::vector<std::string> straight, resumed;
    {
      Study s(open_store_in(d, "a.db"), options(kind, params));
      run(s, 60, straight);
    }
    int done = 0;
    for (int part : {7, 11, 13, 29}) {  // cuts fall inside brackets and generations
      Study s(open_store_in(d, "b.db"), options(kind, params));
      EXPECT_EQ(s.created(), done == 0);
      run(s, part, resumed);
      done += part;
    }
    EXPECT_EQ(straight, resumed) << kind << " " << params.dump();
    EXPECT_GE(straight.size(), 12u) << kind;  // async PBT copies jump members ahead, so it runs fewer
    if (kind == "gp") {
      int restart_trials = 0;
      for (const auto& line : straight) restart_trials += line.find("gp_restart=") != std::string::npos;
      EXPECT_GT(restart_trials, 0) << "the GP study should have entered a restart segment";
    }
  }
}

}  // namespace
}  // namespace kestrel::engine
