// The controllers' shared machinery (history digestion, dedup keys, uniform proposals), the random controller,
// option parsing and the make_nas_tuner factory.
#include "nas/controllers.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.hpp"
#include "tuners/params.hpp"

namespace kestrel::nas {
namespace {

// Splits `space` off the params object (ParamReader handles only scalars) and reads the shared keys.
nlohmann::json shared_keys(const nlohmann::json& j, ControllerParams& common) {
  nlohmann::json rest = j.is_null() ? nlohmann::json::object() : j;
  if (!rest.is_object()) throw ConfigError("NAS controller params must be an object");
  if (rest.contains("space")) {
    common.space = rest["space"];
    rest.erase("space");
  }
  return rest;
}

void read_common(tuners::ParamReader& r, ControllerParams& common) {
  r.get("dedup", common.dedup);
  r.get("allow_degenerate", common.allow_degenerate);
  r.require(common.dedup == "isomorphism" || common.dedup == "function" || common.dedup == "exact" ||
                common.dedup == "none",
            "dedup", "must be isomorphism, function, exact or none");
}

}  // namespace

EvolutionParams EvolutionParams::from_json(const nlohmann::json& j, ControllerParams& common) {
  EvolutionParams p;
  const nlohmann::json rest = shared_keys(j, common);
  tuners::ParamReader r("tuner 'nas_evolution'", rest);
  read_common(r, common);
  r.get("population", p.population);
  r.get("sample_size", p.sample_size);
  r.get("selection", p.selection);
  r.get("hp_sigma", p.hp_sigma);
  r.get("mutation", p.mutation);
  r.get("hp_candidates", p.hp_candidates);
  r.finish();
  r.require(p.mutation == "thompson" || p.mutation == "uniform", "mutation", "must be thompson or uniform");
  r.require(p.hp_candidates >= 1, "hp_candidates", "must be >= 1");
  r.require(p.population >= 2, "population", "must be >= 2");
  r.require(p.sample_size >= 1 && p.sample_size <= p.population, "sample_size", "must be in [1, population]");
  r.require(p.selection == "auto" || p.selection == "tournament" || p.selection == "nsga2", "selection",
            "must be auto, tournament or nsga2");
  r.require(p.hp_sigma > 0, "hp_sigma", "must be > 0");
  return p;
}

ReinforceParams ReinforceParams::from_json(const nlohmann::json& j, ControllerParams& common) {
  ReinforceParams p;
  const nlohmann::json rest = shared_keys(j, common);
  tuners::ParamReader r("tuner 'nas_reinforce'", rest);
  read_common(r, common);
  r.get("learning_rate", p.learning_rate);
  r.get("baseline_decay", p.baseline_decay);
  r.get("entropy_weight", p.entropy_weight);
  r.get("credit", p.credit);
  r.finish();
  r.require(p.credit == "live" || p.credit == "active", "credit", "must be live or active");
  r.require(p.learning_rate > 0, "learning_rate", "must be > 0");
  r.require(p.baseline_decay >= 0 && p.baseline_decay < 1, "baseline_decay", "must be in [0, 1)");
  r.require(p.entropy_weight >= 0, "entropy_weight", "must be >= 0");
  return p;
}

BayesParams BayesParams::from_json(const nlohmann::json& j, ControllerParams& common) {
  BayesParams p;
  const nlohmann::json rest = shared_keys(j, common);
  tuners::ParamReader r("tuner 'nas_bo'", rest);
  read_common(r, common);
  r.get("n_startup", p.n_startup);
  r.get("encoding", p.encoding);
  r.get("acquisition", p.acquisition);
  r.get("ucb_kappa", p.ucb_kappa);
  r.get("n_random", p.n_random);
  r.get("n_parents", p.n_parents);
  r.get("max_points", p.max_points);
  r.finish();
  r.require(p.n_startup >= 1, "n_startup", "must be >= 1");
  r.require(p.acquisition == "ei" || p.acquisition == "ucb", "acquisition", "must be ei or ucb");
  r.require(p.n_random >= 0 && p.n_parents >= 1, "n_random", "n_random >= 0 and n_parents >= 1 required");
  r.require(p.max_points >= 2, "max_points", "must be >= 2");
  return p;
}

NasController::NasController(ControllerParams common, uint64_t seed)
    : common_(std::move(common)), space_(make_arch_space(common_.space)), seed_(seed) {}

NasController::Context NasController::read(const tuners::History& h) const {
  if (h.space == nullptr) throw ConfigError("NAS controller: the history has no search space");
  std::set<std::string> arch_names;
  for (size_t i = 0; i < space_->num_decisions(); ++i) {
    const std::string& n = space_->param_name(i);
    arch_names.insert(n);
    if (!h.space->index_of(n))
      throw ConfigError("NAS controller: the search space lacks the architecture parameter '" + n +
                        "' (a " + space_->kind() + " space with prefix '" + space_->prefix() +
                        "' needs the parameters of nas::arch_params)");
  }
  std::vector<search::ParamSpec> hp;
  for (const auto& p : h.space->params()) {
    if (arch_names.count(p.name)) continue;
    if (p.condition && arch_names.count(p.condition->parent))
      throw ConfigError("NAS controller: hyperparameter '" + p.name + "' is conditioned on architecture parameter '" +
                        p.condition->parent + "', which is not supported");
    hp.push_back(p);
  }
  Context ctx{search::SearchSpace(hp), {}, {}, {}, std::max<size_t>(1, h.objectives.size())};
  for (const search::Trial* t : h.trials) {
    Observation o;
    o.number = t->number;
    try {
      o.arch = space_->from_config(t->config);
      for (const auto& p : ctx.hp_space.params()) {
        auto it = t->config.find(p.name);
        if (it != t->config.end()) o.hp[p.name] = it->second;
      }
    } catch (const ConfigError&) {
      continue;  // a config from elsewhere (e.g. an edited study) that is not an architecture of this space
    }
    ctx.seen.insert(key(o.arch, o.hp, ctx.hp_space));
    if (t->state == search::TrialState::Running || t->state == search::TrialState::Waiting) {
      ctx.pending.push_back(std::move(o));
      continue;
    }
    if (t->state != search::TrialState::Complete || t->values.size() < ctx.objectives) continue;
    bool finite = true;
    for (size_t k = 0; k < ctx.objectives; ++k) {
      const search::Direction d =
          k < h.objectives.size() ? h.objectives[k].direction : search::Direction::Minimize;
      const double v = search::minimize_sign(d) * t->values[k];
      finite = finite && std::isfinite(v);
      o.losses.push_back(v);
    }
    if (finite) ctx.done.push_back(std::move(o));
  }
  return ctx;
}

std::string NasController::key(const Arch& a, const search::Config& hp, const search::SearchSpace& hp_space) const {
  std::string k = common_.dedup == "isomorphism" ? space_->iso_key(a)
                  : common_.dedup == "function" ? space_->function_key(a)
                                                : space_->canonical(a);
  if (hp_space.size() > 0) k += "#" + hp_space.key(hp);
  return k;
}

bool NasController::acceptable(const Arch& a) const {
  const Validity v = space_->check(a);
  return v.valid || (common_.allow_degenerate && v.degenerate);
}

Arch NasController::draw_arch(tuners::Rng& rng) const {
  return common_.allow_degenerate ? space_->sample(rng) : space_->sample_valid(rng);
}

tuners::Proposal NasController::random_unseen(const Context& ctx, tuners::Rng& rng) const {
  for (int tries = 0; tries < 1000; ++tries) {
    const Arch a = draw_arch(rng);
    const search::Config hp = tuners::sample_uniform(ctx.hp_space, rng);
    if (common_.dedup == "none" || !ctx.seen.count(key(a, hp, ctx.hp_space))) return propose(a, hp);
  }
  throw tuners::SpaceExhausted("NAS controller: 1,000 random draws found no architecture that is not already in the study");
}

tuners::Proposal NasController::propose(const Arch& a, const search::Config& hp) const {
  tuners::Proposal p;
  p.config = space_->to_config(a);
  for (const auto& [k, v] : hp) p.config[k] = v;
  p.attrs["arch"] = space_->canonical(a);
  return p;
}

size_t NasController::active_hp_count(const search::SearchSpace& hp_space, const search::Config& hp) {
  size_t n = 0;
  for (const auto& p : hp_space.params())
    if (p.kind != search::ParamKind::Fixed && p.cardinality() != 1 && hp_space.is_active(p, hp)) ++n;
  return n;
}

search::Config NasController::mutate_hp(const search::SearchSpace& hp_space, const search::Config& hp, double sigma,
                                        tuners::Rng& rng) {
  std::vector<size_t> mutable_idx;
  for (size_t i = 0; i < hp_space.size(); ++i) {
    const auto& p = hp_space.params()[i];
    if (p.kind != search::ParamKind::Fixed && p.cardinality() != 1 && hp_space.is_active(p, hp)) mutable_idx.push_back(i);
  }
  if (mutable_idx.empty()) return hp;
  const size_t i = mutable_idx[static_cast<size_t>(rng.below(static_cast<int64_t>(mutable_idx.size())))];
  const auto& p = hp_space.params()[i];
  std::vector<double> u = hp_space.encode(hp);
  const search::Value old = hp.at(p.name);
  if (p.kind == search::ParamKind::Categorical) {
    const int64_t k = static_cast<int64_t>(p.choices.size());
    const int64_t cur = static_cast<int64_t>(std::floor(u[i] * static_cast<double>(k)));
    const int64_t other = (cur + 1 + rng.below(k - 1)) % k;
    u[i] = (static_cast<double>(other) + 0.5) / static_cast<double>(k);
  } else {
    u[i] = std::clamp(u[i] + sigma * rng.normal(), 0.0, 1.0);
    if (search::values_equal(hp_space.decode_one(i, u[i]), old)) u[i] = rng.uniform();
  }
  // decode() re-derives which conditional parameters are active after the change.
  return hp_space.decode(u);
}

std::vector<bool> NasController::live_decisions(const Arch& a) const {
  std::vector<bool> live(space_->num_decisions());
  for (size_t i = 0; i < live.size(); ++i) live[i] = space_->active(a, i);
  for (size_t i : space_->check(a).dead)
    if (i < live.size()) live[i] = false;
  return live;
}

std::vector<double> NasController::live_onehot(const Arch& a) const {
  const std::vector<bool> live = live_decisions(a);
  std::vector<double> f;
  for (size_t i = 0; i < live.size(); ++i)
    for (size_t k = 0; k < space_->choices(i).size(); ++k)
      f.push_back(live[i] && a[i] == static_cast<int>(k) ? 1.0 : 0.0);
  return f;
}

tuners::Proposal RandomController::ask(const tuners::History& h, int64_t number) {
  const Context ctx = read(h);
  tuners::Rng rng(tuners::derive_seed(seed_, number));
  return random_unseen(ctx, rng);
}

AutoController::AutoController(ControllerParams common, uint64_t seed)
    : NasController(common, seed), bo_(BayesParams{}, common, seed), evolution_(EvolutionParams{}, common, seed) {}

tuners::Proposal AutoController::ask(const tuners::History& h, int64_t number) {
  return h.objectives.size() > 1 ? evolution_.ask(h, number) : bo_.ask(h, number);
}

std::unique_ptr<tuners::Tuner> make_nas_tuner(const std::string& kind, const nlohmann::json& params, uint64_t seed) {
  ControllerParams common;
  if (kind == "nas_random") {
    const nlohmann::json rest = shared_keys(params, common);
    tuners::ParamReader r("tuner 'nas_random'", rest);
    read_common(r, common);
    r.finish();
    return std::make_unique<RandomController>(common, seed);
  }
  if (kind == "nas_auto") {
    const nlohmann::json rest = shared_keys(params, common);
    tuners::ParamReader r("tuner 'nas_auto'", rest);
    read_common(r, common);
    r.finish();
    return std::make_unique<AutoController>(common, seed);
  }
  if (kind == "nas_evolution") {
    auto p = EvolutionParams::from_json(params, common);
    return std::make_unique<EvolutionController>(p, common, seed);
  }
  if (kind == "nas_reinforce") {
    auto p = ReinforceParams::from_json(params, common);
    return std::make_unique<ReinforceController>(p, common, seed);
  }
  if (kind == "nas_bo") {
    auto p = BayesParams::from_json(params, common);
    auto t = std::make_unique<BayesController>(p, common, seed);
    const auto enc = t->space().encodings();
    if (std::find(enc.begin(), enc.end(), p.encoding) == enc.end())
      throw ConfigError("tuner 'nas_bo': encoding '" + p.encoding + "' is not offered by a " + t->space().kind() +
                        " space");
    return t;
  }
  std::string valid;
  for (const auto& k : nas_tuner_kinds()) valid += (valid.empty() ? "" : ", ") + k;
  throw ConfigError("unknown NAS controller '" + kind + "'; valid ones are: " + valid);
}

std::vector<std::string> nas_tuner_kinds() { return {"nas_auto", "nas_random", "nas_evolution", "nas_reinforce", "nas_bo"}; }

bool is_nas_tuner(const std::string& kind) {
  const auto k = nas_tuner_kinds();
  return std::find(k.begin(), k.end(), kind) != k.end();
}

}  // namespace kestrel::nas
