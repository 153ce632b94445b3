// nas_bench: the NAS controllers (and Kestrel's TPE) on the synthetic cell score, one JSON line per (method, seed)
// with the best true quality found at each budget; optionally dumps the score tables for the Optuna side.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nas/controllers.hpp"
#include "nas/synthetic.hpp"

using namespace kestrel;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

// NAME=KIND[:JSON]; KIND is a NAS controller or any tuner of make_tuner.
std::unique_ptr<tuners::Tuner> make(const std::string& spec, uint64_t seed, std::string& name) {
  const auto eq = spec.find('=');
  name = eq == std::string::npos ? spec : spec.substr(0, eq);
  std::string rest = eq == std::string::npos ? spec : spec.substr(eq + 1);
  nlohmann::json params = nlohmann::json::object();
  const auto colon = rest.find(':');
  if (colon != std::string::npos) {
    params = nlohmann::json::parse(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
  }
  if (nas::is_nas_tuner(rest)) return nas::make_nas_tuner(rest, params, seed);
  return tuners::make_tuner(rest, params, seed);
}

}  // namespace

int main(int argc, char** argv) {
  int seeds = 30, evals = 300, first_seed = 0;
  std::vector<int> budgets{50, 100, 300};
  std::string methods = "random=nas_random;evolution=nas_evolution;reinforce=nas_reinforce;bo=nas_bo;kestrel_tpe=tpe";
  std::string dump;
  double interaction = nas::SyntheticParams{}.interaction, noise = nas::SyntheticParams{}.noise;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--seeds") seeds = std::stoi(next());
    else if (a == "--first-seed") first_seed = std::stoi(next());
    else if (a == "--evals") evals = std::stoi(next());
    else if (a == "--budgets") {
      budgets.clear();
      for (const auto& b : split(next(), ',')) budgets.push_back(std::stoi(b));
    } else if (a == "--methods") methods = next();
    else if (a == "--dump-tables") dump = next();
    else if (a == "--interaction") interaction = std::stod(next());
    else if (a == "--noise") noise = std::stod(next());
    else {
      std::cerr << "usage: nas_bench [--seeds N] [--first-seed S] [--evals N] [--budgets 50,100,300]\n"
                   "  [--methods 'NAME=KIND[:JSON];...'] [--dump-tables FILE.json] [--interaction X] [--noise X]\n";
      return 2;
    }
  }
  auto space = std::make_shared<nas::CellSpace>();
  nlohmann::json tables = nlohmann::json::array();
  for (int s = first_seed; s < first_seed + seeds; ++s) {
    // Each seed is a different function (and noise stream), so no method is tuned to one landscape.
    const nas::SyntheticCellScore score(space, 1000 + s, {interaction, noise});
    if (!dump.empty())
      tables.push_back({{"seed", s}, {"optimum", score.optimum()}, {"noise", noise}, {"table", score.table()}});
    for (const auto& m : split(methods, ';')) {
      std::string name;
      auto tuner = make(m, static_cast<uint64_t>(s), name);
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<double> q = nas::run_synthetic(*tuner, score, evals, 7000 + s);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json best = nlohmann::json::object();
      for (int b : budgets) {
        double m_best = -1e300;
        for (int i = 0; i < b && i < static_cast<int>(q.size()); ++i) m_best = std::max(m_best, q[i]);
        best[std::to_string(b)] = m_best;
      }
      nlohmann::json line = {{"method", name}, {"seed", s}, {"optimum", score.optimum()}, {"best", best},
                             {"seconds", secs}};
      std::cout << line.dump() << std::endl;
    }
  }
  if (!dump.empty()) {
    nlohmann::json out = {{"ops", space->ops()}, {"edges", nlohmann::json::array()}, {"seeds", tables}};
    for (size_t e = 0; e < space->num_edges(); ++e) out["edges"].push_back(space->param_name(e));
    std::ofstream(dump) << out.dump();
  }
  return 0;
}
