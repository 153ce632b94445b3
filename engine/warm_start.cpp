// Warm start (finished trials of a source study mapped onto a new space and inserted as COMPLETE priors) and the
// lookup of another study's trial weights for init_from.
#include "engine/warm_start.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/study.hpp"

namespace kestrel::engine {
namespace fs = std::filesystem;
using search::ParamKind;
using search::ParamSpec;
using search::Trial;
using search::TrialState;
using search::Value;

namespace {

std::string num(double x) { return search::to_string(Value{x}); }

bool is_number(const Value& v) { return std::holds_alternative<double>(v) || std::holds_alternative<int64_t>(v); }

// A step grid holds x when (x - low) / step is a whole number, up to rounding of the decimal text it came from.
bool on_grid(double x, double low, double step) {
  double k = (x - low) / step;
  return std::fabs(k - std::round(k)) <= 1e-9 * std::max(1.0, std::fabs(k));
}

// Converts one source value to parameter p of the new space; nullopt with `why` when it does not fit.
std::optional<Value> convert(const Value& v, const ParamSpec& p, std::string& why) {
  const std::string shown = "'" + p.name + "' = " + search::to_string(v);
  switch (p.kind) {
    case ParamKind::Fixed:
      if (search::values_equal(v, p.fixed)) return p.fixed;
      why = shown + " in the source, but the new space fixes it to " + search::to_string(p.fixed);
      return std::nullopt;
    case ParamKind::Categorical:
      for (const auto& c : p.choices)
        if (search::values_equal(v, c)) return c;
      why = shown + " is not among the new choices";
      return std::nullopt;
    case ParamKind::Float:
    case ParamKind::Int: {
      if (!is_number(v)) {
        why = shown + " is not a number, but the new space makes it " +
              (p.kind == ParamKind::Float ? "a float" : "an int");
        return std::nullopt;
      }
      double x = search::as_double(v);
      if (!(x >= p.low && x <= p.high)) {
        why = shown + " is outside the new range [" + num(p.low) + ", " + num(p.high) + "]";
        return std::nullopt;
      }
      if (p.kind == ParamKind::Int) {
        if (x != std::floor(x)) {
          why = shown + " is not a whole number, but the new space makes it an int";
          return std::nullopt;
        }
        if (p.step && !on_grid(x, p.low, *p.step)) {
          why = shown + " is off the new step grid (low " + num(p.low) + ", step " + num(*p.step) + ")";
          return std::nullopt;
        }
        return Value{static_cast<int64_t>(x)};
      }
      if (p.step && !on_grid(x, p.low, *p.step)) {
        why = shown + " is off the new step grid (low " + num(p.low) + ", step " + num(*p.step) + ")";
        return std::nullopt;
      }
      return Value{x};
    }
  }
  why = shown + ": unknown parameter kind";
  return std::nullopt;
}

// Opens a store that must already exist: looking up another study must not leave an empty database behind when the
// URL has a typo. Only SQLite files can be checked beforehand; other schemes are opened as they are.
std::unique_ptr<store::Store> open_existing(const std::string& url, const std::string& what) {
  std::string path;
  if (url.rfind("sqlite://", 0) == 0) path = url.substr(9);
  else if (url.find("://") == std::string::npos) path = url;
  std::error_code ec;
  if (!path.empty() && path != ":memory:" && !fs::exists(path, ec))
    throw ConfigError(what + ": no database at " + url + " (" + fs::absolute(path).string() + ")");
  try {
    return store::open_store(url);
  } catch (const StoreError& e) {
    throw ConfigError(what + ": cannot open " + url + ": " + e.what());
  }
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Spec

WarmStartSpec WarmStartSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("warm_start: expected a mapping {storage, study, max_trials, fill}");
  WarmStartSpec s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "storage") {
      if (!it->is_string()) throw ConfigError("warm_start.storage: expected a store URL");
      s.storage = it->get<std::string>();
    } else if (k == "study") {
      if (!it->is_string() || it->get<std::string>().empty())
        throw ConfigError("warm_start.study: expected the source study's name");
      s.study = it->get<std::string>();
    } else if (k == "max_trials") {
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        throw ConfigError("warm_start.max_trials: expected a whole number >= 0 (0 = all)");
      s.max_trials = it->get<int64_t>();
    } else if (k == "fill") {
      if (!it->is_object()) throw ConfigError("warm_start.fill: expected a mapping {parameter: value}");
      for (auto f = it->begin(); f != it->end(); ++f) {
        if (f->is_structured() || f->is_null())
          throw ConfigError("warm_start.fill." + f.key() + ": expected a plain value");
        s.fill[f.key()] = search::value_from_json(*f);
      }
    } else {
      throw ConfigError("warm_start: unknown key '" + k + "' (expected storage, study, max_trials, fill)");
    }
  }
  if (s.study.empty()) throw ConfigError("warm_start: missing 'study' (the source study's name)");
  return s;
}

nlohmann::json WarmStartSpec::to_json() const {
  nlohmann::json j = {{"storage", storage}, {"study", study}, {"max_trials", max_trials}};
  j["fill"] = search::config_to_json(fill);
  return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Mapping

MappedConfig map_config(const search::Config& source, const search::SearchSpace& target,
                        const std::map<std::string, Value>& fill) {
  MappedConfig m;
  search::Config out;
  for (const auto& p : target.params()) {
    if (!target.is_active(p, out)) continue;
    auto it = source.find(p.name);
    if (it == source.end()) {
      if (p.kind == ParamKind::Fixed) {
        out[p.name] = p.fixed;
        m.filled.push_back(p.name);
        continue;
      }
      auto f = fill.find(p.name);
      if (f == fill.end()) {
        m.reason = "'" + p.name + "' is new in this space and warm_start.fill gives no value for it";
        return m;
      }
      std::string why;
      auto v = convert(f->second, p, why);
      if (!v) {
        m.reason = "warm_start.fill: " + why;
        return m;
      }
      out[p.name] = *v;
      m.filled.push_back(p.name);
      continue;
    }
    std::string why;
    auto v = convert(it->second, p, why);
    if (!v) {
      m.reason = why;
      return m;
    }
    out[p.name] = *v;
  }
  for (const auto& [name, v] : source)
    if (!out.count(name)) m.dropped.push_back(name);
  try {
    target.check(out);
  } catch (const ConfigError& e) {
    m.reason = e.what();
    return m;
  }
  m.config = std::move(out);
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

nlohmann::json WarmStartReport::to_json() const {
  auto entries = [](const std::vector<Entry>& es, bool mapped) {
    auto a = nlohmann::json::array();
    for (const auto& e : es) {
      nlohmann::json j = {{"source_number", e.source_number}};
      if (mapped) j["number"] = e.new_number;
      else j["reason"] = e.reason;
      a.push_back(std::move(j));
    }
    return a;
  };
  return {{"source_study", source_study},     {"source_storage", source_storage},
          {"source_complete", source_complete}, {"mapped", entries(mapped, true)},
          {"skipped", entries(skipped, false)}, {"dropped_params", dropped_params},
          {"filled_params", filled_params}};
}

WarmStartReport WarmStartReport::from_json(const nlohmann::json& j) {
  WarmStartReport r;
  r.source_study = j.value("source_study", "");
  r.source_storage = j.value("source_storage", "");
  r.source_complete = j.value("source_complete", int64_t{0});
  for (const auto& e : j.value("mapped", nlohmann::json::array()))
    r.mapped.push_back({e.value("source_number", int64_t{-1}), e.value("number", int64_t{-1}), ""});
  for (const auto& e : j.value("skipped", nlohmann::json::array()))
    r.skipped.push_back({e.value("source_number", int64_t{-1}), -1, e.value("reason", "")});
  r.dropped_params = j.value("dropped_params", std::vector<std::string>{});
  r.filled_params = j.value("filled_params", std::vector<std::string>{});
  return r;
}

std::string WarmStartReport::summary() const {
  std::ostringstream os;
  os << "warm start from study '" << source_study << "'" << (already_done ? " (done before; nothing copied now)" : "")
     << ": " << mapped.size() << " of " << source_complete << " complete trial(s) mapped, " << skipped.size()
     << " skipped";
  if (!dropped_params.empty()) {
    os << "; dropped parameters:";
    for (const auto& p : dropped_params) os << " " << p;
  }
  if (!filled_params.empty()) {
    os << "; filled parameters:";
    for (const auto& p : filled_params) os << " " << p;
  }
  // Reasons repeat across trials (one re-ranged parameter skips many); show each distinct one once with a count.
  std::map<std::string, int> reasons;
  for (const auto& e : skipped) reasons[e.reason]++;
  for (const auto& [why, n] : reasons) os << "\n  skipped " << n << ": " << why;
  return os.str();
}

// ---------------------------------------------------------------------------------------------------------------
// Warm start

WarmStartReport warm_start(Study& study, const WarmStartSpec& spec, store::Store* source) {
  store::Store& dst = study.store();
  std::unique_ptr<store::Store> opened;
  if (!source) {
    if (spec.storage.empty()) {
      source = &dst;
    } else {
      opened = open_existing(spec.storage, "warm_start.storage");
      source = opened.get();
    }
  }
  if (source == &dst && spec.study == study.options().name)
    throw ConfigError("warm_start: study '" + spec.study + "' cannot warm-start itself");

  WarmStartReport rep;
  rep.source_study = spec.study;
  rep.source_storage = spec.storage;

  auto me = dst.find_study(study.options().name);
  if (me) {
    auto it = me->attrs.find(kStudyAttrWarmStart);
    if (it != me->attrs.end()) {
      auto j = nlohmann::json::parse(it->second, nullptr, false);
      if (!j.is_discarded() && j.is_object()) rep = WarmStartReport::from_json(j);
      rep.already_done = true;
      return rep;
    }
  }

  auto src_info = source->find_study(spec.study);
  if (!src_info)
    throw ConfigError("warm_start: no study '" + spec.study + "' in " +
                      (spec.storage.empty() ? std::string("this study's store") : spec.storage));

  const auto& objectives = study.options().objectives;
  const auto& constraints = study.options().constraints;
  const auto& space = study.options().space;

  // Source trials already copied by an interrupted earlier call (never copy one twice).
  std::set<int64_t> copied;
  for (const auto& t : dst.trials(study.id())) {
    auto it = t.attrs.find(search::kAttrWarmStart);
    if (it == t.attrs.end()) continue;
    auto j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_object() && j.value("study", "") == spec.study && j.contains("number"))
      copied.insert(j["number"].get<int64_t>());
  }

  struct Candidate {
    const Trial* trial;
    search::Config config;
    std::vector<double> values;
    std::optional<std::vector<double>> violations;
  };
  std::vector<Trial> src_trials = source->trials(src_info->id);
  std::vector<Candidate> cands;
  for (const auto& t : src_trials) {
    if (t.state != TrialState::Complete) continue;
    ++rep.source_complete;
    if (is_warm_start(t)) {  // the source's own priors were measured elsewhere: copying them again would nest
      rep.skipped.push_back({t.number, -1, "a warm-start prior of the source study itself"});
      continue;
    }
    MappedConfig m = map_config(t.config, space, spec.fill);
    if (!m.config) {
      rep.skipped.push_back({t.number, -1, m.reason});
      continue;
    }
    Candidate c{&t, std::move(*m.config), {}, std::nullopt};
    std::string missing;
    for (const auto& o : objectives) {
      auto v = trial_metric(t, src_info->objectives, o.name);
      if (!v || !std::isfinite(*v)) {
        missing = o.name;
        break;
      }
      c.values.push_back(*v);
    }
    if (!missing.empty()) {
      rep.skipped.push_back({t.number, -1, "objective '" + missing + "' was not recorded by the source trial"});
      continue;
    }
    if (!constraints.empty()) {
      try {
        c.violations = evaluate_constraints(t, src_info->objectives, constraints);
      } catch (const EvalError& e) {
        rep.skipped.push_back({t.number, -1, e.what()});
        continue;
      }
    }
    for (const auto& d : m.dropped) add_unique(rep.dropped_params, d);
    for (const auto& f : m.filled) add_unique(rep.filled_params, f);
    cands.push_back(std::move(c));
  }
  if (spec.max_trials > 0 && static_cast<int64_t>(cands.size()) > spec.max_trials) {
    // The best ones by the first objective (stable: ties keep source order, so the choice is reproducible).
    double s = search::minimize_sign(objectives[0].direction);
    std::stable_sort(cands.begin(), cands.end(),
                     [&](const Candidate& a, const Candidate& b) { return s * a.values[0] < s * b.values[0]; });
    for (size_t i = static_cast<size_t>(spec.max_trials); i < cands.size(); ++i)
      rep.skipped.push_back({cands[i].trial->number, -1, "beyond warm_start.max_trials"});
    cands.resize(static_cast<size_t>(spec.max_trials));
    std::stable_sort(cands.begin(), cands.end(),
                     [](const Candidate& a, const Candidate& b) { return a.trial->number < b.trial->number; });
  }

  for (const auto& c : cands) {
    const Trial& t = *c.trial;
    nlohmann::json origin = {{"study", spec.study}, {"number", t.number}, {"storage", spec.storage}};
    if (copied.count(t.number)) {
      // Copied by the interrupted call; find its number for the report.
      for (const auto& mine : dst.trials(study.id()))
        if (auto it = mine.attrs.find(search::kAttrWarmStart); it != mine.attrs.end()) {
          auto j = nlohmann::json::parse(it->second, nullptr, false);
          if (j.is_object() && j.value("study", "") == spec.study && j.value("number", int64_t{-1}) == t.number)
            rep.mapped.push_back({t.number, mine.number, ""});
        }
      continue;
    }
    std::map<std::string, std::string> attrs;
    attrs[search::kAttrWarmStart] = origin.dump();
    if (auto it = t.attrs.find(kAttrMetrics); it != t.attrs.end()) attrs[kAttrMetrics] = it->second;
    if (c.violations) attrs[search::kAttrConstraints] = nlohmann::json(*c.violations).dump();
    Trial added = dst.create_trial(study.id(), c.config, TrialState::Running, kWarmStartWorker, attrs);
    dst.finish(added.id, TrialState::Complete, c.values, "");
    rep.mapped.push_back({t.number, added.number, ""});
  }
  dst.set_study_attr(study.id(), kStudyAttrWarmStart, rep.to_json().dump());
  return rep;
}

// ---------------------------------------------------------------------------------------------------------------
// Trial weights for init_from

TrialRef TrialRef::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ConfigError("init_from: expected a weights file or {storage, study, trial}");
  TrialRef r;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "storage" && it->is_string()) {
      r.storage = it->get<std::string>();
    } else if (k == "study" && it->is_string()) {
      r.study = it->get<std::string>();
    } else if (k == "trial" && (it->is_string() || it->is_number_integer())) {
      r.trial = it->is_string() ? it->get<std::string>() : std::to_string(it->get<int64_t>());
    } else if (k == "storage" || k == "study" || k == "trial") {
      throw ConfigError("init_from." + k + ": expected " +
                        (k == "trial" ? std::string("best or a trial number") : std::string("text")));
    } else {
      throw ConfigError("init_from: unknown key '" + k + "' (expected storage, study, trial)");
    }
  }
  if (r.study.empty()) throw ConfigError("init_from: missing 'study' (the study whose trial's weights to start from)");
  bool numeric = !r.trial.empty() && std::all_of(r.trial.begin(), r.trial.end(), ::isdigit);
  if (r.trial != "best" && !numeric)
    throw ConfigError("init_from.trial: expected 'best' or a trial number, got '" + r.trial + "'");
  return r;
}

nlohmann::json TrialRef::to_json() const { return {{"storage", storage}, {"study", study}, {"trial", trial}}; }

nlohmann::json ResolvedTrial::to_json() const {
  return {{"storage", storage}, {"study", study}, {"trial", number}, {"weights", weights}};
}

ResolvedTrial resolve_trial_weights(const TrialRef& ref, const std::string& default_storage) {
  ResolvedTrial r;
  r.storage = ref.storage.empty() ? default_storage : ref.storage;
  r.study = ref.study;
  if (r.storage.empty()) throw ConfigError("init_from: no storage given for study '" + ref.study + "'");
  std::unique_ptr<store::Store> st = open_existing(r.storage, "init_from");
  auto info = st->find_study(ref.study);
  if (!info) throw ConfigError("init_from: no study '" + ref.study + "' in " + r.storage);
  auto trials = st->trials(info->id);
  const Trial* chosen = nullptr;
  if (ref.trial == "best") {
    if (info->objectives.size() != 1)
      throw ConfigError("init_from: study '" + ref.study + "' has " + std::to_string(info->objectives.size()) +
                        " objectives, so 'best' is a Pareto front: name a trial number");
    double s = search::minimize_sign(info->objectives[0].direction);
    for (const auto& t : trials)
      if (t.state == TrialState::Complete && !t.values.empty() && !is_warm_start(t) && is_feasible(t) &&
          (!chosen || s * t.values[0] < s * chosen->values[0]))
        chosen = &t;
    if (!chosen)
      throw ConfigError("init_from: study '" + ref.study + "' has no COMPLETE feasible trial of its own yet");
  } else {
    int64_t n = std::stoll(ref.trial);
    for (const auto& t : trials)
      if (t.number == n) chosen = &t;
    if (!chosen) throw ConfigError("init_from: study '" + ref.study + "' has no trial " + ref.trial);
    if (chosen->state != TrialState::Complete)
      throw ConfigError("init_from: trial " + ref.trial + " of study '" + ref.study + "' is " +
                        search::to_string(chosen->state) + ", not COMPLETE");
  }
  r.number = chosen->number;
  auto it = chosen->attrs.find(kAttrWeights);
  if (it == chosen->attrs.end() || it->second.empty())
    throw ConfigError("init_from: trial " + std::to_string(r.number) + " of study '" + ref.study +
                      "' has no saved weights (attr '" + kAttrWeights +
                      "'; only trials run by the trainer evaluator save them)");
  r.weights = it->second;
  std::error_code ec;
  if (!fs::exists(r.weights, ec))
    throw ConfigError("init_from: the weights of trial " + std::to_string(r.number) + " of study '" + ref.study +
                      "' (" + r.weights + ") no longer exist");
  return r;
}

}  // namespace kestrel::engine
