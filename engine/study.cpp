// Study and TrialHandle: ask/tell over a tuner, a pruner and a store, with heartbeats for running trials.
// The trial cache is kept in step with the store incrementally (trials_changed_since), so ask() costs O(changes).
#include "engine/study.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.hpp"
#if __has_include("nas/controllers.hpp")
#include "nas/controllers.hpp"
#define KESTREL_HAVE_NAS 1
#endif

namespace kestrel::engine {

using search::ParamKind;
using search::ParamSpec;

// ---------------------------------------------------------------------------------------------------------------
// Space <-> JSON

nlohmann::json space_to_json(const SearchSpace& space) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : space.params()) {
    nlohmann::json j;
    j["name"] = p.name;
    switch (p.kind) {
      case ParamKind::Float: j["type"] = "float"; break;
      case ParamKind::Int: j["type"] = "int"; break;
      case ParamKind::Categorical: j["type"] = "categorical"; break;
      case ParamKind::Fixed: j["type"] = "fixed"; break;
    }
    if (p.kind == ParamKind::Float || p.kind == ParamKind::Int) {
      j["low"] = p.low;
      j["high"] = p.high;
      j["log"] = p.log;
      if (p.step) j["step"] = *p.step;
    }
    if (p.kind == ParamKind::Categorical) {
      j["choices"] = nlohmann::json::array();
      for (const auto& c : p.choices) j["choices"].push_back(search::to_json(c));
    }
    if (p.kind == ParamKind::Fixed) j["value"] = search::to_json(p.fixed);
    if (p.condition) {
      j["condition"]["parent"] = p.condition->parent;
      j["condition"]["values"] = nlohmann::json::array();
      for (const auto& v : p.condition->values) j["condition"]["values"].push_back(search::to_json(v));
    }
    arr.push_back(std::move(j));
  }
  return arr;
}

SearchSpace space_from_json(const nlohmann::json& arr) {
  std::vector<ParamSpec> params;
  try {
    for (const auto& j : arr) {
      ParamSpec p;
      p.name = j.at("name").get<std::string>();
      std::string type = j.at("type").get<std::string>();
      if (type == "float" || type == "int") {
        p.kind = type == "float" ? ParamKind::Float : ParamKind::Int;
        p.low = j.at("low").get<double>();
        p.high = j.at("high").get<double>();
        p.log = j.value("log", false);
        if (j.contains("step")) p.step = j["step"].get<double>();
      } else if (type == "categorical") {
        p.kind = ParamKind::Categorical;
        for (const auto& c : j.at("choices")) p.choices.push_back(search::value_from_json(c));
      } else if (type == "fixed") {
        p.kind = ParamKind::Fixed;
        p.fixed = search::value_from_json(j.at("value"));
      } else {
        throw ConfigError("unknown parameter type '" + type + "' in stored space");
      }
      if (j.contains("condition")) {
        search::Condition c;
        c.parent = j["condition"].at("parent").get<std::string>();
        for (const auto& v : j["condition"].at("values")) c.values.push_back(search::value_from_json(v));
        p.condition = std::move(c);
      }
      params.push_back(std::move(p));
    }
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(std::string("stored search space is malformed: ") + e.what());
  }
  return SearchSpace(std::move(params));
}

std::string default_worker_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
  return std::string(host) + ":" + std::to_string(getpid());
}

namespace {

nlohmann::json objectives_json(const std::vector<Objective>& objs) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& o : objs) a.push_back({{"name", o.name}, {"direction", search::to_string(o.direction)}});
  return a;
}

bool same_objectives(const std::vector<Objective>& a, const std::vector<Objective>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].direction != b[i].direction) return false;
  return true;
}

// Better-than for the first objective; NaN-free values only (tell() refuses non-finite values).
bool better(const Trial& a, const Trial& b, const Objective& o) {
  double s = search::minimize_sign(o.direction);
  return s * a.values[0] < s * b.values[0];
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Study

Study::Study(std::shared_ptr<store::Store> store, StudyOptions options)
    : store_(std::move(store)), options_(std::move(options)) {
  if (!store_) throw ConfigError("Study needs a store");
  if (options_.objectives.empty()) throw ConfigError("a study needs at least one objective");
  if (options_.worker.empty()) options_.worker = default_worker_id();
  if (options_.stale_after <= 0) options_.stale_after = 4.0 * std::max(options_.heartbeat_interval, 1.0);
  // Build the algorithms first: a bad tuner or pruner setting is refused before anything is written.
#ifdef KESTREL_HAVE_NAS
  // NAS controllers live in nas/ (above tuners/), so only the engine can make them.
  if (nas::is_nas_tuner(options_.tuner))
    tuner_ = nas::make_nas_tuner(options_.tuner, options_.tuner_params, options_.seed);
  else
#endif
    tuner_ = tuners::make_tuner(options_.tuner, options_.tuner_params, options_.seed);
  pruner_ = tuners::make_pruner(options_.pruner, options_.pruner_params);

  std::string space_json = space_to_json(options_.space).dump();
  auto found = store_->find_study(options_.name);
  if (found) {
    if (found->space_json != space_json)
      throw ConfigError("study '" + options_.name +
                        "' already exists with a different search space; use another study name (--study) or the "
                        "original space");
    if (!same_objectives(found->objectives, options_.objectives))
      throw ConfigError("study '" + options_.name + "' already exists with different objectives");
    info_ = *found;
  } else {
    try {
      info_ = store_->create_study(options_.name, options_.objectives, space_json);
      created_ = true;
      for (const auto& [k, v] : options_.study_attrs) store_->set_study_attr(info_.id, k, v);
      store_->set_study_attr(info_.id, "tuner", options_.tuner);
      store_->set_study_attr(info_.id, "objectives", objectives_json(options_.objectives).dump());
      if (!options_.constraints.empty())
        store_->set_study_attr(info_.id, "constraints", constraints_to_json(options_.constraints).dump());
    } catch (const StoreError&) {
      // Another process may have created it between find and create: load theirs.
      auto again = store_->find_study(options_.name);
      if (!again) throw;
      if (again->space_json != space_json)
        throw ConfigError("study '" + options_.name + "' was created concurrently with a different search space");
      info_ = *again;
    }
  }
  {
    std::lock_guard lk(mu_);
    refresh_locked();
  }
  if (options_.heartbeat_interval > 0) heartbeat_thread_ = std::thread([this] { heartbeat_loop(); });
}

Study::~Study() {
  {
    std::lock_guard lk(live_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void Study::heartbeat_loop() {
  std::unique_lock lk(live_mu_);
  auto period = std::chrono::duration<double>(options_.heartbeat_interval);
  while (!stop_) {
    stop_cv_.wait_for(lk, period, [this] { return stop_; });
    if (stop_) break;
    std::vector<int64_t> ids(live_.begin(), live_.end());
    lk.unlock();
    for (int64_t id : ids) {
      try {
        store_->heartbeat(id);
      } catch (const Error&) {
        // The trial finished (or was reclaimed) meanwhile; its handle will learn on tell.
      }
    }
    lk.lock();
  }
}

void Study::track(int64_t trial_id, bool live) {
  std::lock_guard lk(live_mu_);
  if (live)
    live_.insert(trial_id);
  else
    live_.erase(trial_id);
}

void Study::refresh_locked() {
  for (auto& t : store_->trials_changed_since(info_.id, cursor_)) upsert_locked(std::move(t));
}

void Study::upsert_locked(Trial t) {
  int64_t n = t.number;
  auto [it, inserted] = cache_.insert_or_assign(n, std::move(t));
  if (!inserted) return;  // map nodes are stable: the ordered view still points at the right record
  if (ordered_.empty() || ordered_.back()->number < n) {
    ordered_.push_back(&it->second);
  } else {
    ordered_.clear();  // a number arrived out of order (another worker): rebuild once
    for (const auto& [k, v] : cache_) ordered_.push_back(&v);
  }
}

tuners::History Study::history_locked() const {
  tuners::History h;
  h.space = &options_.space;
  h.objectives = options_.objectives;
  // Kept in step by upsert_locked(): walking the map on every ask dominated ask() at 10k trials.
  h.trials = ordered_;
  return h;
}

TrialHandle Study::ask() {
  std::lock_guard lk(mu_);
  if (auto claimed = store_->claim_waiting(info_.id, options_.worker)) {
    track(claimed->id, true);
    upsert_locked(*claimed);
    return TrialHandle(this, std::move(*claimed));
  }
  refresh_locked();
  int64_t next = cache_.empty() ? 0 : cache_.rbegin()->first + 1;
  tuners::Proposal p = tuner_->ask(history_locked(), next);
  auto attrs = p.attrs;
  if (p.budget) attrs["budget"] = search::to_string(search::Value{*p.budget});
  Trial t = store_->create_trial(info_.id, p.config, TrialState::Running, options_.worker, attrs);
  track(t.id, true);
  upsert_locked(t);
  return TrialHandle(this, std::move(t));
}

int64_t Study::enqueue(const Config& config, const std::map<std::string, std::string>& attrs) {
  options_.space.check(config);
  Trial t = store_->create_trial(info_.id, config, TrialState::Waiting, "", attrs);
  std::lock_guard lk(mu_);
  upsert_locked(t);
  return t.number;
}

std::vector<Trial> Study::reclaim_stale() {
  auto lost = store_->fail_stale(info_.id, options_.stale_after);
  if (lost.empty() || options_.retry_failed <= 0) return lost;
  for (const auto& t : lost) {
    // Retries form a chain: the retry count travels in the attrs of each new attempt.
    int attempt = 0;
    if (auto it = t.attrs.find("retry_count"); it != t.attrs.end()) attempt = std::stoi(it->second);
    if (attempt >= options_.retry_failed) continue;
    auto attrs = t.attrs;
    attrs["retry_of"] = std::to_string(t.number);
    attrs["retry_count"] = std::to_string(attempt + 1);
    enqueue(t.config, attrs);
  }
  return lost;
}

std::vector<Trial> Study::trials() {
  std::lock_guard lk(mu_);
  refresh_locked();
  std::vector<Trial> out;
  out.reserve(cache_.size());
  for (const auto& [n, t] : cache_) out.push_back(t);
  return out;
}

std::optional<Trial> Study::best_trial() {
  std::lock_guard lk(mu_);
  refresh_locked();
  const Trial* best = nullptr;
  for (const auto& [n, t] : cache_)
    if (t.state == TrialState::Complete && !t.values.empty() && is_feasible(t) && !is_warm_start(t) &&
        (!best || better(t, *best, options_.objectives[0])))
      best = &t;
  if (!best) return std::nullopt;
  return *best;
}

std::vector<Trial> Study::pareto_front() {
  std::lock_guard lk(mu_);
  refresh_locked();
  std::vector<const Trial*> done;
  for (const auto& [n, t] : cache_)
    if (t.state == TrialState::Complete && t.values.size() == options_.objectives.size() && is_feasible(t) &&
        !is_warm_start(t))
      done.push_back(&t);
  auto dominates = [&](const Trial& a, const Trial& b) {
    bool strictly = false;
    for (size_t k = 0; k < options_.objectives.size(); ++k) {
      double s = search::minimize_sign(options_.objectives[k].direction);
      if (s * a.values[k] > s * b.values[k]) return false;
      if (s * a.values[k] < s * b.values[k]) strictly = true;
    }
    return strictly;
  };
  std::vector<Trial> front;
  for (const Trial* a : done) {
    bool dominated = std::any_of(done.begin(), done.end(), [&](const Trial* b) { return dominates(*b, *a); });
    if (!dominated) front.push_back(*a);
  }
  return front;
}

bool Study::should_prune(const Trial& t, int64_t step) {
  std::lock_guard lk(mu_);
  refresh_locked();
  auto it = cache_.find(t.number);
  if (it == cache_.end()) return false;
  return pruner_->should_prune(history_locked(), it->second, step);
}

// ---------------------------------------------------------------------------------------------------------------
// TrialHandle

TrialHandle::TrialHandle(TrialHandle&& o) noexcept
    : study_(o.study_), trial_(std::move(o.trial_)), last_step_(o.last_step_), told_(o.told_) {
  o.study_ = nullptr;
}

TrialHandle& TrialHandle::operator=(TrialHandle&& o) noexcept {
  if (this != &o) {
    if (study_ && !told_) {
      try {
        finish(TrialState::Failed, {}, "abandoned: the trial handle was dropped without a result");
      } catch (...) {
      }
    }
    study_ = o.study_;
    trial_ = std::move(o.trial_);
    last_step_ = o.last_step_;
    told_ = o.told_;
    o.study_ = nullptr;
  }
  return *this;
}

TrialHandle::~TrialHandle() {
  if (study_ && !told_) {
    try {
      finish(TrialState::Failed, {}, "abandoned: the trial handle was dropped without a result");
    } catch (...) {
      // A destructor must not throw; the heartbeat stops, so the trial will be reclaimed as lost.
    }
  }
}

std::optional<double> TrialHandle::budget() const {
  auto it = trial_.attrs.find("budget");
  if (it == trial_.attrs.end()) return std::nullopt;
  return std::stod(it->second);
}

double TrialHandle::get_double(const std::string& name) const {
  auto it = trial_.config.find(name);
  if (it == trial_.config.end()) throw ConfigError("trial has no parameter '" + name + "'");
  return search::as_double(it->second);
}

int64_t TrialHandle::get_int(const std::string& name) const {
  auto it = trial_.config.find(name);
  if (it == trial_.config.end()) throw ConfigError("trial has no parameter '" + name + "'");
  if (auto i = std::get_if<int64_t>(&it->second)) return *i;
  double d = search::as_double(it->second);
  if (d != std::floor(d)) throw ConfigError("parameter '" + name + "' is not an integer");
  return static_cast<int64_t>(d);
}

std::string TrialHandle::get_string(const std::string& name) const {
  auto it = trial_.config.find(name);
  if (it == trial_.config.end()) throw ConfigError("trial has no parameter '" + name + "'");
  return search::to_string(it->second);
}

void TrialHandle::report(int64_t step, const std::map<std::string, double>& metrics) {
  if (!study_) throw Error("report() on an empty trial handle");
  if (told_) throw Error("trial " + std::to_string(trial_.number) + " was already told");
  study_->store_->report(trial_.id, step, metrics);
  for (const auto& [k, v] : metrics) {
    auto it = std::find_if(trial_.reports.begin(), trial_.reports.end(),
                           [&](const search::Report& r) { return r.step == step && r.metric == k; });
    if (it != trial_.reports.end())
      it->value = v;
    else
      trial_.reports.push_back({step, k, v});
  }
  last_step_ = std::max(last_step_, step);
}

void TrialHandle::report(int64_t step, double value) {
  report(step, std::map<std::string, double>{{study_->options_.objectives[0].name, value}});
}

bool TrialHandle::should_prune() {
  if (!study_ || told_ || last_step_ < 0) return false;
  return study_->should_prune(trial_, last_step_);
}

void TrialHandle::tell(const std::vector<double>& values) {
  if (!study_) throw Error("tell() on an empty trial handle");
  const auto& objs = study_->options_.objectives;
  if (values.size() != objs.size()) {
    finish(TrialState::Failed, {},
           "expected " + std::to_string(objs.size()) + " objective value(s), got " + std::to_string(values.size()));
    return;
  }
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) {
      finish(TrialState::Failed, {},
             "objective '" + objs[i].name + "' is " + (std::isnan(values[i]) ? "NaN" : "infinite"));
      return;
    }
  if (!study_->options_.constraints.empty()) {
    Trial done = trial_;
    done.values = values;
    std::vector<double> violations;
    try {
      violations = evaluate_constraints(done, objs, study_->options_.constraints);
    } catch (const EvalError& e) {
      finish(TrialState::Failed, {}, e.what());
      return;
    }
    set_attr(search::kAttrConstraints, nlohmann::json(violations).dump());
  }
  finish(TrialState::Complete, values, "");
}

void TrialHandle::tell_failed(const std::string& reason) { finish(TrialState::Failed, {}, reason); }
void TrialHandle::tell_pruned(const std::string& reason) { finish(TrialState::Pruned, {}, reason); }

void TrialHandle::set_attr(const std::string& key, const std::string& value) {
  if (!study_) throw Error("set_attr() on an empty trial handle");
  study_->store_->set_trial_attr(trial_.id, key, value);
  trial_.attrs[key] = value;
}

void TrialHandle::finish(TrialState state, const std::vector<double>& values, const std::string& reason) {
  if (!study_) throw Error("tell() on an empty trial handle");
  if (told_) throw Error("trial " + std::to_string(trial_.number) + " was already told");
  told_ = true;
  study_->track(trial_.id, false);
  study_->store_->finish(trial_.id, state, values, reason);
  trial_.state = state;
  trial_.values = values;
  trial_.fail_reason = reason;
}

}  // namespace kestrel::engine
