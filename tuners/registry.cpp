// The tuner and pruner factories (one table each: a new algorithm joins by one line), the History filters and
// derive_seed. "gp" and the multi-fidelity kinds join when their files exist (written separately).
#include <algorithm>
#include <functional>
#include <utility>

#include "common/error.hpp"
#include "tuners/cmaes.hpp"
#include "tuners/grid.hpp"
#include "tuners/pruners.hpp"
#include "tuners/random.hpp"
#include "tuners/sobol.hpp"
#include "tuners/tpe.hpp"
#include "tuners/tuner.hpp"
// Algorithms written in other files join when both their header and source exist (a header alone would leave
// make_*_tuner undefined at link time). KESTREL_TUNERS_CORE_ONLY builds the core set alone.
#if !defined(KESTREL_TUNERS_CORE_ONLY) && __has_include("tuners/gp.hpp") && __has_include("tuners/gp.cpp")
#include "tuners/gp.hpp"
#define KESTREL_HAS_GP 1
#endif
#if !defined(KESTREL_TUNERS_CORE_ONLY) && __has_include("tuners/multifidelity.hpp") && \
    __has_include("tuners/hyperband.cpp")
#include "tuners/multifidelity.hpp"
#define KESTREL_HAS_MULTIFIDELITY 1
#endif

namespace kestrel::tuners {

std::vector<const Trial*> History::with_state(TrialState s) const {
  std::vector<const Trial*> out;
  for (const Trial* t : trials)
    if (t->state == s) out.push_back(t);
  return out;
}

std::vector<const Trial*> History::running() const {
  std::vector<const Trial*> out;
  for (const Trial* t : trials)
    if (t->state == TrialState::Running || t->state == TrialState::Waiting) out.push_back(t);
  return out;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

using TunerFactory = std::function<std::unique_ptr<Tuner>(const nlohmann::json&, uint64_t)>;
using PrunerFactory = std::function<std::unique_ptr<Pruner>(const nlohmann::json&)>;

const std::vector<std::pair<std::string, TunerFactory>>& tuner_table() {
  static const std::vector<std::pair<std::string, TunerFactory>> table = {
      {"random", make_random_tuner},
      {"grid", make_grid_tuner},
      {"sobol", make_sobol_tuner},
      {"tpe", make_tpe_tuner},
      {"cmaes", make_cmaes_tuner},
#ifdef KESTREL_HAS_GP
      {"gp", make_gp_tuner},
#endif
  };
  return table;
}

const std::vector<std::pair<std::string, PrunerFactory>>& pruner_table() {
  static const std::vector<std::pair<std::string, PrunerFactory>> table = {
      {"none",
       [](const nlohmann::json& j) -> std::unique_ptr<Pruner> {
         if (j.is_object() && !j.empty())
           throw ConfigError("pruner 'none': unknown option '" + j.begin().key() + "'; it takes no options");
         return std::make_unique<NonePruner>();
       }},
      {"median",
       [](const nlohmann::json& j) -> std::unique_ptr<Pruner> {
         return std::make_unique<PercentilePruner>(PercentileParams::from_json(j, "median"), "median");
       }},
      {"percentile",
       [](const nlohmann::json& j) -> std::unique_ptr<Pruner> {
         return std::make_unique<PercentilePruner>(PercentileParams::from_json(j, "percentile"), "percentile");
       }},
      {"patience",
       [](const nlohmann::json& j) -> std::unique_ptr<Pruner> {
         return std::make_unique<PatiencePruner>(PatienceParams::from_json(j));
       }},
      {"threshold",
       [](const nlohmann::json& j) -> std::unique_ptr<Pruner> {
         return std::make_unique<ThresholdPruner>(ThresholdParams::from_json(j));
       }},
  };
  return table;
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

uint64_t derive_seed(uint64_t seed, int64_t number, uint64_t stream) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(number)) ^ stream);
}

std::unique_ptr<Tuner> make_tuner(const std::string& kind, const nlohmann::json& params, uint64_t seed) {
  for (const auto& [name, make] : tuner_table())
    if (name == kind) return make(params, seed);
#ifdef KESTREL_HAS_MULTIFIDELITY
  if (auto t = make_multifidelity_tuner(kind, params, seed)) return t;
#endif
  throw ConfigError("unknown tuner '" + kind + "'; valid tuners are: " + join(tuner_kinds()));
}

std::unique_ptr<Pruner> make_pruner(const std::string& kind, const nlohmann::json& params) {
  for (const auto& [name, make] : pruner_table())
    if (name == kind) return make(params);
#ifdef KESTREL_HAS_MULTIFIDELITY
  if (auto p = make_multifidelity_pruner(kind, params)) return p;
#endif
  throw ConfigError("unknown pruner '" + kind + "'; valid pruners are: " + join(pruner_kinds()));
}

std::vector<std::string> tuner_kinds() {
  std::vector<std::string> out;
  for (const auto& [name, f] : tuner_table()) out.push_back(name);
#ifdef KESTREL_HAS_MULTIFIDELITY
  for (auto& k : multifidelity_tuner_kinds()) out.push_back(std::move(k));
#endif
  return out;
}

std::vector<std::string> pruner_kinds() {
  std::vector<std::string> out;
  for (const auto& [name, f] : pruner_table()) out.push_back(name);
#ifdef KESTREL_HAS_MULTIFIDELITY
  for (auto& k : multifidelity_pruner_kinds()) out.push_back(std::move(k));
#endif
  return out;
}

}  // namespace kestrel::tuners
