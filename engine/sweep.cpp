// The sweep-file parser: YAML -> SweepSpec, with file:line messages for every problem it finds.
// Every problem is collected before throwing, so `kestrel validate` shows them all at once.
#include "engine/sweep.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "common/error.hpp"
#include "nas/arch_space.hpp"
#include "nas/controllers.hpp"

namespace kestrel::engine {
namespace fs = std::filesystem;
using search::ParamKind;
using search::ParamSpec;
using search::Value;

size_t edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: Levenshtein plus adjacent transposition as one edit ("flaot" -> "float"), the most
  // common typo in hand-written keys.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // About a third of the word's length (1 edit for short words, 2-3 for longer ones) separates typos from
  // different words.
  size_t limit = word.size() <= 3 ? 1 : std::clamp<size_t>(word.size() / 3, 2, 3);
  return best_d <= limit ? best : "";
}

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

bool is_quoted(const YAML::Node& n) { return n.Tag() == "!"; }

// A scalar as the most specific Value it spells: int, then float, then bool, else string; quoted text stays a string.
Value scalar_value(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (is_quoted(n)) return s;
  static const std::regex kInt(R"([-+]?[0-9]+)");
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, kInt)) {
    try {
      return static_cast<int64_t>(std::stoll(s));
    } catch (const std::exception&) {
    }
  }
  if (std::regex_match(s, kFloat)) return std::stod(s);
  if (s == ".inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf") return -HUGE_VAL;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  return s;
}

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return search::to_json(scalar_value(n));
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = yaml_to_json(kv.second);
      return o;
    }
    default: return nullptr;
  }
}

const char* type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null: return "nothing";
    default: return "an undefined value";
  }
}

std::string shown(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  return type_name(n);
}

// Accumulates problems with their locations while the parse walks the document.
class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  std::vector<std::string> errors;
  std::map<std::string, int> lines;

  std::string loc(const YAML::Node& n) const {
    if (!n.IsDefined()) return file_;  // a missing key: no position of its own
    YAML::Mark m = n.Mark();
    if (m.is_null() || m.line < 0) return file_;
    return file_ + ":" + std::to_string(m.line + 1);
  }
  void err(const YAML::Node& at, const std::string& msg) { errors.push_back(loc(at) + ": " + msg); }
  void note_line(const std::string& key, const YAML::Node& n) {
    if (!n.IsDefined()) return;
    YAML::Mark m = n.Mark();
    if (!m.is_null() && m.line >= 0) lines[key] = m.line + 1;
  }

  // Reports keys of `map` outside `allowed`, with the closest allowed key as a suggestion.
  void check_keys(const YAML::Node& map, const std::string& section, const std::vector<std::string>& allowed) {
    for (const auto& kv : map) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string msg = "unknown key '" + key + "'" + (section.empty() ? "" : " in " + section);
      std::string near = closest_match(key, allowed);
      if (!near.empty())
        msg += " (did you mean '" + near + "'?)";
      else
        msg += " (expected one of: " + join(allowed, ", ") + ")";
      err(kv.first, msg);
    }
  }

  bool want_map(const YAML::Node& n, const std::string& what) {
    if (n.IsMap()) return true;
    err(n, what + ": expected a mapping, got " + shown(n));
    return false;
  }

  std::optional<std::string> str(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar()) return n.Scalar();
    err(n, what + ": expected a string, got " + std::string(type_name(n)));
    return std::nullopt;
  }
  std::optional<double> number(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar() && !is_quoted(n)) {
      Value v = scalar_value(n);
      if (std::holds_alternative<double>(v)) return std::get<double>(v);
      if (std::holds_alternative<int64_t>(v)) return static_cast<double>(std::get<int64_t>(v));
    }
    err(n, what + ": expected a number, got " + shown(n));
    return std::nullopt;
  }
  std::optional<int64_t> integer(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar() && !is_quoted(n)) {
      Value v = scalar_value(n);
      if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
      // 1e3 and 4.0 are whole numbers written as floats; accept them.
      if (std::holds_alternative<double>(v)) {
        double d = std::get<double>(v);
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
      }
    }
    err(n, what + ": expected an integer, got " + shown(n));
    return std::nullopt;
  }
  std::optional<bool> boolean(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar() && !is_quoted(n)) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "False" || s == "no" || s == "off") return false;
    }
    err(n, what + ": expected true or false, got " + shown(n));
    return std::nullopt;
  }
  // Seconds: a number, or text with a unit suffix ("90s", "15m", "2h").
  std::optional<double> duration(const YAML::Node& n, const std::string& what) {
    if (n.IsScalar() && !is_quoted(n)) {
      static const std::regex kDur(R"(([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|min|h|d)?)");
      std::smatch m;
      const std::string& s = n.Scalar();
      if (std::regex_match(s, m, kDur)) {
        double x = std::stod(m[1].str());
        std::string unit = m[2].str();
        if (unit == "ms") x /= 1000.0;
        if (unit == "m" || unit == "min") x *= 60.0;
        if (unit == "h") x *= 3600.0;
        if (unit == "d") x *= 86400.0;
        return x;
      }
    }
    err(n, what + ": expected a duration in seconds (e.g. 30, 90s, 15m, 2h), got " + shown(n));
    return std::nullopt;
  }
  template <class T>
  std::optional<T> at_least(std::optional<T> v, T min, const YAML::Node& n, const std::string& what) {
    if (v && *v < min) {
      std::ostringstream os;
      os << what << ": must be >= " << min << " (got " << *v << ")";
      err(n, os.str());
      return std::nullopt;
    }
    return v;
  }

 private:
  std::string file_;
};

const std::vector<std::string> kTopKeys = {"study",   "description", "storage",  "seed",         "space",
                                           "objective", "objectives", "tuner",  "pruner",       "evaluator",
                                           "budget",  "n_jobs",      "retry_failed", "heartbeat", "runs_dir", "nas",
                                           "constraints", "warm_start", "checkpoints"};
const std::vector<std::string> kParamKeys = {"type", "low", "high", "log", "step", "choices", "value", "condition"};
const std::vector<std::string> kParamTypes = {"float", "int", "categorical", "fixed"};
const std::vector<std::string> kBudgetKeys = {"n_trials", "timeout", "target", "max_failed"};
const std::vector<std::string> kObjectiveKeys = {"name", "direction"};
const std::vector<std::string> kEvaluatorKinds = {"command", "function", "trainer"};
const std::vector<std::string> kCommandKeys = {"kind",     "command",  "shell",     "env",     "cwd",  "timeout",
                                               "grace",    "metrics",  "regex",     "step_key", "final_key"};
const std::vector<std::string> kFunctionKeys = {"kind", "function", "dim", "steps", "curve_scale", "metric"};
const std::vector<std::string> kTrainerKeys = {"kind", "train_file", "settings"};
const std::vector<std::string> kHeartbeatKeys = {"interval", "stale_after"};

void parse_param(Parser& P, const std::string& name, const YAML::Node& n, std::vector<ParamSpec>& out,
                 std::map<std::string, const YAML::Node*>& where) {
  const std::string what = "space." + name;
  ParamSpec p;
  p.name = name;
  if (n.IsScalar()) {  // shorthand: a constant
    p.kind = ParamKind::Fixed;
    p.fixed = scalar_value(n);
    out.push_back(p);
    return;
  }
  if (n.IsSequence()) {  // shorthand: the list of choices
    p.kind = ParamKind::Categorical;
    for (const auto& c : n) {
      if (!c.IsScalar()) {
        P.err(c, what + ": choices must be scalars, got " + std::string(type_name(c)));
        return;
      }
      p.choices.push_back(scalar_value(c));
    }
    out.push_back(p);
    return;
  }
  if (!P.want_map(n, what)) return;
  P.check_keys(n, what, kParamKeys);
  if (!n["type"]) {
    P.err(n, what + ": missing 'type' (one of: " + join(kParamTypes, ", ") + ")");
    return;
  }
  auto type = P.str(n["type"], what + ".type");
  if (!type) return;
  bool ok = true;
  auto need_num = [&](const char* key) -> double {
    if (!n[key]) {
      P.err(n, what + ": missing '" + key + "'");
      ok = false;
      return 0.0;
    }
    auto v = P.number(n[key], what + "." + key);
    if (!v) ok = false;
    return v.value_or(0.0);
  };
  auto forbid = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (n[k]) {
        P.err(n[k], what + ": '" + k + "' does not apply to type " + *type);
        ok = false;
      }
  };
  if (*type == "float" || *type == "int") {
    p.kind = *type == "float" ? ParamKind::Float : ParamKind::Int;
    p.low = need_num("low");
    p.high = need_num("high");
    if (n["log"]) {
      auto b = P.boolean(n["log"], what + ".log");
      ok = ok && b.has_value();
      p.log = b.value_or(false);
    }
    if (n["step"]) {
      auto s = P.number(n["step"], what + ".step");
      ok = ok && s.has_value();
      if (s) p.step = *s;
    }
    forbid({"choices", "value"});
    if (ok && p.kind == ParamKind::Int) {
      if (p.low != std::floor(p.low)) P.err(n["low"], what + ".low: an int parameter needs whole bounds"), ok = false;
      if (p.high != std::floor(p.high))
        P.err(n["high"], what + ".high: an int parameter needs whole bounds"), ok = false;
    }
    if (ok && !(p.low < p.high)) {
      std::ostringstream os;
      os << what << ": impossible range: low (" << search::to_string(Value{p.low}) << ") must be < high ("
         << search::to_string(Value{p.high}) << ")";
      P.err(n["low"], os.str());
      ok = false;
    }
    if (ok && p.log && p.low <= 0) {
      P.err(n["low"], what + ": a log scale needs low > 0 (got " + search::to_string(Value{p.low}) + ")");
      ok = false;
    }
  } else if (*type == "categorical") {
    p.kind = ParamKind::Categorical;
    forbid({"low", "high", "log", "step", "value"});
    if (!n["choices"]) {
      P.err(n, what + ": missing 'choices'");
      ok = false;
    } else if (!n["choices"].IsSequence()) {
      P.err(n["choices"], what + ".choices: expected a list, got " + shown(n["choices"]));
      ok = false;
    } else {
      for (const auto& c : n["choices"]) {
        if (!c.IsScalar()) {
          P.err(c, what + ".choices: each choice must be a scalar, got " + std::string(type_name(c)));
          ok = false;
          continue;
        }
        p.choices.push_back(scalar_value(c));
      }
      if (ok && p.choices.empty()) P.err(n["choices"], what + ".choices: needs at least one choice"), ok = false;
    }
  } else if (*type == "fixed") {
    p.kind = ParamKind::Fixed;
    forbid({"low", "high", "log", "step", "choices"});
    if (!n["value"] || !n["value"].IsScalar()) {
      P.err(n, what + ": a fixed parameter needs a scalar 'value'");
      ok = false;
    } else {
      p.fixed = scalar_value(n["value"]);
    }
  } else {
    std::string near = closest_match(*type, kParamTypes);
    P.err(n["type"], what + ".type: unknown type '" + *type + "'" +
                         (near.empty() ? " (expected one of: " + join(kParamTypes, ", ") + ")"
                                       : " (did you mean '" + near + "'?)"));
    return;
  }
  if (n["condition"]) {
    const YAML::Node& c = n["condition"];
    if (!c.IsMap() || c.size() != 1) {
      P.err(c, what + ".condition: expected one entry 'parent: [values]', e.g. {opt: [sgd]}");
      ok = false;
    } else {
      auto kv = *c.begin();
      search::Condition cond;
      cond.parent = kv.first.Scalar();
      if (kv.second.IsScalar()) {
        cond.values.push_back(scalar_value(kv.second));
      } else if (kv.second.IsSequence()) {
        for (const auto& v : kv.second) {
          if (v.IsScalar()) cond.values.push_back(scalar_value(v));
          else P.err(v, what + ".condition: values must be scalars"), ok = false;
        }
      } else {
        P.err(kv.second, what + ".condition: expected a value or a list of values of '" + cond.parent + "'");
        ok = false;
      }
      p.condition = cond;
    }
  }
  if (!ok) return;
  where[name] = &n;
  out.push_back(p);
}

void parse_space(Parser& P, const YAML::Node& n, SweepSpec& s, const std::vector<ParamSpec>& extra) {
  if (!P.want_map(n, "space")) return;
  if (n.size() == 0 && extra.empty()) {
    P.err(n, "space: needs at least one parameter");
    return;
  }
  std::vector<ParamSpec> params = extra;
  std::map<std::string, const YAML::Node*> where;
  std::vector<YAML::Node> nodes;  // keeps the nodes alive for `where`
  nodes.reserve(n.size());
  for (const auto& kv : n) nodes.push_back(kv.second);
  size_t i = 0;
  for (const auto& kv : n) {
    parse_param(P, kv.first.Scalar(), nodes[i], params, where);
    P.note_line("space." + kv.first.Scalar(), kv.first);
    ++i;
  }
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  for (const auto& p : params) {
    if (!p.condition) continue;
    if (std::find(names.begin(), names.end(), p.condition->parent) == names.end()) {
      std::string near = closest_match(p.condition->parent, names);
      P.err((*where[p.name])["condition"], "space." + p.name + ".condition: unknown parameter '" +
                                               p.condition->parent + "'" +
                                               (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      return;
    }
  }
  if (params.size() != n.size() + extra.size()) return;  // errors already reported
  try {
    s.space = SearchSpace(params);
  } catch (const ConfigError& e) {
    // SearchSpace names the parameter as "parameter 'x': ..."; point at its line.
    std::string msg = e.what();
    static const std::regex kName(R"(parameter '([^']+)')");
    std::smatch m;
    if (std::regex_search(msg, m, kName) && where.count(m[1].str()))
      P.err(*where[m[1].str()], "space." + m[1].str() + ": " + msg.substr(m.position(0) + m.length(0) + 2));
    else
      P.err(n, "space: " + msg);
  }
}

std::optional<Objective> parse_objective(Parser& P, const YAML::Node& n, const std::string& what) {
  Objective o;
  if (n.IsScalar()) {  // shorthand: just the direction
    try {
      o.direction = search::direction_from_string(n.Scalar());
      return o;
    } catch (const ConfigError&) {
      P.err(n, what + ": expected minimize or maximize, got '" + n.Scalar() + "'");
      return std::nullopt;
    }
  }
  if (!P.want_map(n, what)) return std::nullopt;
  P.check_keys(n, what, kObjectiveKeys);
  if (n["name"]) {
    auto name = P.str(n["name"], what + ".name");
    if (!name) return std::nullopt;
    o.name = *name;
  }
  if (n["direction"]) {
    auto d = P.str(n["direction"], what + ".direction");
    if (!d) return std::nullopt;
    if (*d == "min") *d = "minimize";
    if (*d == "max") *d = "maximize";
    try {
      o.direction = search::direction_from_string(*d);
    } catch (const ConfigError&) {
      P.err(n["direction"], what + ".direction: expected minimize or maximize, got '" + *d + "'");
      return std::nullopt;
    }
  }
  return o;
}

// `tuner: sobol` or `tuner: {kind: tpe, n_startup: 10}`: every key but kind is a parameter of the algorithm.
void parse_algorithm(Parser& P, const YAML::Node& n, const std::string& what, std::string& kind,
                     nlohmann::json& params) {
  if (n.IsScalar()) {
    kind = n.Scalar();
    return;
  }
  if (!P.want_map(n, what)) return;
  if (!n["kind"]) {
    P.err(n, what + ": missing 'kind'");
    return;
  }
  if (auto k = P.str(n["kind"], what + ".kind")) kind = *k;
  params = nlohmann::json::object();
  for (const auto& kv : n)
    if (kv.first.Scalar() != "kind") params[kv.first.Scalar()] = yaml_to_json(kv.second);
}

// Replaces {sweep_dir} now: it is the one placeholder known before any trial exists.
std::string expand_sweep_dir(std::string s, const std::string& dir) {
  const std::string key = "{sweep_dir}";
  for (size_t pos = s.find(key); pos != std::string::npos; pos = s.find(key, pos + dir.size()))
    s.replace(pos, key.size(), dir);
  return s;
}

void parse_evaluator(Parser& P, const YAML::Node& n, SweepSpec& s, bool root_has_space) {
  if (!P.want_map(n, "evaluator")) return;
  if (!n["kind"]) {
    P.err(n, "evaluator: missing 'kind' (one of: " + join(kEvaluatorKinds, ", ") + ")");
    return;
  }
  auto kind = P.str(n["kind"], "evaluator.kind");
  if (!kind) return;
  EvaluatorSpec& e = s.evaluator;
  e.kind = *kind;
  P.note_line("evaluator", n["kind"]);
  if (*kind == "command") {
    P.check_keys(n, "evaluator", kCommandKeys);
    CommandSpec& c = e.command;
    if (n["shell"])
      if (auto b = P.boolean(n["shell"], "evaluator.shell")) c.shell = *b;
    const YAML::Node& cmd = n["command"];
    if (!cmd) {
      P.err(n, "evaluator: missing 'command' (a list: [program, arg, ...])");
    } else {
      P.note_line("evaluator.command", cmd);
      if (cmd.IsScalar()) {
        if (c.shell) {
          c.argv = {cmd.Scalar()};
        } else {
          std::istringstream is(cmd.Scalar());
          for (std::string w; is >> w;) c.argv.push_back(w);
        }
      } else if (cmd.IsSequence()) {
        for (const auto& a : cmd) {
          if (a.IsScalar()) c.argv.push_back(a.Scalar());
          else P.err(a, "evaluator.command: each argument must be a string, got " + std::string(type_name(a)));
        }
      } else {
        P.err(cmd, "evaluator.command: expected a list of arguments, got " + std::string(type_name(cmd)));
      }
      if (c.argv.empty() && (cmd.IsScalar() || cmd.IsSequence())) P.err(cmd, "evaluator.command: is empty");
      for (auto& a : c.argv) a = expand_sweep_dir(a, s.dir);
      // A relative program path means "next to the sweep file", so the sweep works from any working directory.
      if (!c.shell && !c.argv.empty() && c.argv[0].find('/') != std::string::npos &&
          c.argv[0].find('{') == std::string::npos && fs::path(c.argv[0]).is_relative())
        c.argv[0] = (fs::path(s.dir) / c.argv[0]).lexically_normal().string();
      // Placeholders must name parameters (or the per-trial values the evaluator provides).
      static const std::regex kPh(R"(\{([A-Za-z_][A-Za-z0-9_.\-]*)\})");
      std::vector<std::string> known;
      for (const auto& p : s.space.params()) known.push_back(p.name);
      for (const char* k : {"trial", "trial_dir", "budget", "checkpoint_dir", "restore_from"}) known.push_back(k);
      if (!s.nas_space.is_null()) known.push_back("arch");
      for (const auto& a : c.argv)
        for (auto it = std::sregex_iterator(a.begin(), a.end(), kPh); it != std::sregex_iterator(); ++it) {
          std::string ph = (*it)[1].str();
          if (std::find(known.begin(), known.end(), ph) != known.end() || s.space.size() == 0) continue;
          std::string near = closest_match(ph, known);
          P.err(cmd, "evaluator.command: placeholder {" + ph + "} names no parameter" +
                         (near.empty() ? " (known: {" + join(known, "}, {") + "})" : " (did you mean {" + near + "}?)"));
        }
    }
    if (n["env"]) {
      if (P.want_map(n["env"], "evaluator.env"))
        for (const auto& kv : n["env"])
          if (auto v = P.str(kv.second, "evaluator.env." + kv.first.Scalar()))
            c.env[kv.first.Scalar()] = expand_sweep_dir(*v, s.dir);
    }
    if (n["cwd"])
      if (auto w = P.str(n["cwd"], "evaluator.cwd")) {
        fs::path p(expand_sweep_dir(*w, s.dir));
        c.cwd = p.is_absolute() ? p.string() : (fs::path(s.dir) / p).lexically_normal().string();
      }
    if (n["timeout"])
      if (auto t = P.at_least(P.duration(n["timeout"], "evaluator.timeout"), 0.0, n["timeout"], "evaluator.timeout"))
        c.timeout_s = *t;
    if (n["grace"])
      if (auto t = P.at_least(P.duration(n["grace"], "evaluator.grace"), 0.0, n["grace"], "evaluator.grace"))
        c.grace_s = *t;
    if (n["metrics"])
      if (auto m = P.str(n["metrics"], "evaluator.metrics")) {
        try {
          c.format = metric_format_from_string(*m);
        } catch (const ConfigError&) {
          P.err(n["metrics"], "evaluator.metrics: expected key_value, json or regex, got '" + *m + "'");
        }
      }
    if (n["regex"]) {
      if (auto r = P.str(n["regex"], "evaluator.regex")) {
        try {
          std::regex re(*r);
          if (re.mark_count() < 2)
            P.err(n["regex"], "evaluator.regex: needs two groups: (metric name) and (value)");
          else
            c.regex = *r;
        } catch (const std::regex_error& ex) {
          P.err(n["regex"], "evaluator.regex: invalid regular expression: " + std::string(ex.what()));
        }
      }
      if (!n["metrics"]) c.format = MetricFormat::Regex;
    }
    if (c.format == MetricFormat::Regex && !n["regex"])
      P.err(n["metrics"], "evaluator: metrics: regex needs a 'regex' with groups (name) and (value)");
    if (n["step_key"])
      if (auto v = P.str(n["step_key"], "evaluator.step_key")) c.step_key = *v;
    if (n["final_key"])
      if (auto v = P.str(n["final_key"], "evaluator.final_key")) c.final_key = *v;
  } else if (*kind == "function") {
    P.check_keys(n, "evaluator", kFunctionKeys);
    if (!n["function"]) P.err(n, "evaluator: missing 'function' (e.g. branin, hartmann6, rosenbrock)");
    else if (auto f = P.str(n["function"], "evaluator.function")) e.function.name = *f;
    P.note_line("evaluator.function", n["function"] ? n["function"] : n);
    if (n["dim"])
      if (auto x = P.at_least<int64_t>(P.integer(n["dim"], "evaluator.dim"), 1, n["dim"], "evaluator.dim"))
        e.function.dim = static_cast<int>(std::min<int64_t>(*x, 1000));
    if (n["steps"])
      if (auto x = P.at_least<int64_t>(P.integer(n["steps"], "evaluator.steps"), 0, n["steps"], "evaluator.steps"))
        e.function.options.steps = static_cast<int>(std::min<int64_t>(*x, 1000000));
    if (n["curve_scale"])
      if (auto x = P.number(n["curve_scale"], "evaluator.curve_scale")) e.function.options.curve_scale = *x;
    if (n["metric"])
      if (auto x = P.str(n["metric"], "evaluator.metric")) e.function.options.metric = *x;
    // The function must exist and, when the file gives a space, find its x0..x{d-1} there; without a space the
    // function's own box is used.
    if (!e.function.name.empty()) {
      try {
        BenchmarkFunction fn = make_benchmark_function(e.function.name, e.function.dim);
        if (s.space.size() == 0 && !root_has_space) {
          s.space = fn.space;
        } else if (s.space.size() > 0) {
          for (const auto& p : fn.space.params())
            if (!s.space.index_of(p.name))
              P.err(n["function"], "evaluator.function: " + e.function.name + " needs parameter '" + p.name +
                                       "' in space (it reads x0..x" + std::to_string(fn.dim() - 1) +
                                       "; or leave space out to use the function's own box)");
        }
      } catch (const ConfigError& ex) {
        std::string near = closest_match(e.function.name, benchmark_function_names());
        P.err(n["function"], "evaluator.function: " + std::string(ex.what()) +
                                 (near.empty() || near == e.function.name ? "" : " (did you mean '" + near + "'?)"));
      }
    }
  } else if (*kind == "trainer") {
    P.check_keys(n, "evaluator", kTrainerKeys);
    if (!n["train_file"]) {
      P.err(n, "evaluator: missing 'train_file' (the training file, docs/model-file.md)");
    } else if (auto m = P.str(n["train_file"], "evaluator.train_file")) {
      fs::path p(expand_sweep_dir(*m, s.dir));
      e.trainer.train_file = p.is_absolute() ? p.string() : (fs::path(s.dir) / p).lexically_normal().string();
      P.note_line("evaluator.train_file", n["train_file"]);
    }
    if (n["settings"] && P.want_map(n["settings"], "evaluator.settings")) {
      e.trainer.settings = yaml_to_json(n["settings"]);
      P.note_line("evaluator.settings", n["settings"]);
    }
  } else {
    std::string near = closest_match(*kind, kEvaluatorKinds);
    P.err(n["kind"], "evaluator.kind: unknown kind '" + *kind + "'" +
                         (near.empty() ? " (expected one of: " + join(kEvaluatorKinds, ", ") + ")"
                                       : " (did you mean '" + near + "'?)"));
  }
}

void parse_budget(Parser& P, const YAML::Node& n, SweepSpec& s) {
  if (!P.want_map(n, "budget")) return;
  P.check_keys(n, "budget", kBudgetKeys);
  BudgetSpec& b = s.budget;
  if (n["n_trials"])
    if (auto v = P.at_least<int64_t>(P.integer(n["n_trials"], "budget.n_trials"), 0, n["n_trials"], "budget.n_trials"))
      b.n_trials = *v;
  if (n["timeout"])
    if (auto v = P.duration(n["timeout"], "budget.timeout")) b.timeout_s = *v;
  if (n["target"])
    if (auto v = P.number(n["target"], "budget.target")) b.target = *v;
  if (n["max_failed"])
    if (auto v = P.at_least<int64_t>(P.integer(n["max_failed"], "budget.max_failed"), 0, n["max_failed"],
                                     "budget.max_failed"))
      b.max_failed = *v;
}

void parse_heartbeat(Parser& P, const YAML::Node& n, SweepSpec& s) {
  if (n.IsScalar()) {
    if (auto v = P.duration(n, "heartbeat")) s.heartbeat_s = *v;
  } else if (P.want_map(n, "heartbeat")) {
    P.check_keys(n, "heartbeat", kHeartbeatKeys);
    if (n["interval"])
      if (auto v = P.duration(n["interval"], "heartbeat.interval")) s.heartbeat_s = *v;
    if (n["stale_after"])
      if (auto v = P.duration(n["stale_after"], "heartbeat.stale_after")) s.stale_after_s = *v;
  }
  if (!(s.heartbeat_s > 0)) P.err(n, "heartbeat: the interval must be > 0 seconds");
  if (s.stale_after_s != 0 && s.stale_after_s <= s.heartbeat_s)
    P.err(n, "heartbeat.stale_after: must be longer than the interval (" + search::to_string(Value{s.heartbeat_s}) +
                 " s), or a live trial would be declared lost");
}

}  // namespace

SweepSpec parse_sweep(const std::string& text, const std::string& file, const std::string& dir) {
  SweepSpec s;
  s.file = file;
  s.text = text;
  s.dir = dir.empty() ? fs::current_path().string() : fs::absolute(dir).lexically_normal().string();
  {
    std::string stem = fs::path(file).stem().string();
    s.study = (file.empty() || file[0] == '<' || stem.empty()) ? "default" : stem;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": malformed YAML: " + e.msg);
  }
  Parser P(file);
  if (!root.IsMap()) {
    throw ConfigError(file + ": a sweep file is a mapping of keys (study, space, evaluator, budget, ...), got " +
                      type_name(root));
  }
  P.check_keys(root, "", kTopKeys);
  if (root["study"])
    if (auto v = P.str(root["study"], "study")) {
      if (v->empty()) P.err(root["study"], "study: the name must not be empty");
      s.study = *v;
    }
  if (root["storage"])
    if (auto v = P.str(root["storage"], "storage")) s.storage = *v;
  if (root["seed"])
    if (auto v = P.at_least<int64_t>(P.integer(root["seed"], "seed"), 0, root["seed"], "seed"))
      s.seed = static_cast<uint64_t>(*v);
  // `nas:` adds one categorical parameter per architecture decision to the space.
  std::vector<ParamSpec> arch;
  if (root["nas"] && P.want_map(root["nas"], "nas")) {
    const YAML::Node& nn = root["nas"];
    P.check_keys(nn, "nas", {"space", "compile"});
    s.nas_space = nn["space"] ? yaml_to_json(nn["space"]) : nlohmann::json::object();
    s.nas_compile = nn["compile"] ? yaml_to_json(nn["compile"]) : nlohmann::json::object();
    try {
      arch = nas::arch_params(s.nas_space);
      (void)nas::CompileOptions::from_json(s.nas_compile);
    } catch (const ConfigError& e) {
      P.err(nn, std::string("nas: ") + e.what());
    }
  }
  if (root["space"]) {
    parse_space(P, root["space"], s, arch);
  } else if (!arch.empty()) {
    try {
      s.space = SearchSpace(arch);
    } catch (const ConfigError& e) {
      P.err(root["nas"], std::string("nas: ") + e.what());
    }
  }

  if (root["objective"] && root["objectives"]) P.err(root["objectives"], "give either 'objective' or 'objectives'");
  if (root["objective"]) {
    if (auto o = parse_objective(P, root["objective"], "objective")) s.objectives = {*o};
  } else if (root["objectives"]) {
    const YAML::Node& os = root["objectives"];
    if (!os.IsSequence() || os.size() == 0) {
      P.err(os, "objectives: expected a non-empty list of {name, direction}");
    } else {
      s.objectives.clear();
      size_t i = 0;
      for (const auto& o : os)
        if (auto ob = parse_objective(P, o, "objectives[" + std::to_string(i++) + "]")) s.objectives.push_back(*ob);
      for (size_t a = 0; a < s.objectives.size(); ++a)
        for (size_t b = a + 1; b < s.objectives.size(); ++b)
          if (s.objectives[a].name == s.objectives[b].name)
            P.err(os, "objectives: name '" + s.objectives[a].name + "' appears twice");
    }
  }

  if (root["tuner"]) {
    parse_algorithm(P, root["tuner"], "tuner", s.tuner, s.tuner_params);
    P.note_line("tuner", root["tuner"]);
  }
  if (root["pruner"]) {
    parse_algorithm(P, root["pruner"], "pruner", s.pruner, s.pruner_params);
    P.note_line("pruner", root["pruner"]);
  }
  if (root["evaluator"]) parse_evaluator(P, root["evaluator"], s, static_cast<bool>(root["space"]));
  else P.err(root, "missing 'evaluator' (kind: command, function or trainer)");
  if (!root["space"] && s.space.size() == 0) P.err(root, "missing 'space' (the parameters to tune)");
  if (root["budget"]) parse_budget(P, root["budget"], s);
  if (root["n_jobs"])
    if (auto v = P.at_least<int64_t>(P.integer(root["n_jobs"], "n_jobs"), 1, root["n_jobs"], "n_jobs"))
      s.n_jobs = static_cast<int>(std::min<int64_t>(*v, 4096));
  if (root["retry_failed"])
    if (auto v = P.at_least<int64_t>(P.integer(root["retry_failed"], "retry_failed"), 0, root["retry_failed"],
                                     "retry_failed"))
      s.retry_failed = static_cast<int>(std::min<int64_t>(*v, 1000));
  if (root["heartbeat"]) parse_heartbeat(P, root["heartbeat"], s);
  if (root["runs_dir"])
    if (auto v = P.str(root["runs_dir"], "runs_dir")) s.runs_dir = *v;
  // The checkpoint lifecycle's retention policy (engine/checkpoints.hpp).
  if (const YAML::Node& ck = root["checkpoints"]) {
    if (P.want_map(ck, "checkpoints")) {
      P.check_keys(ck, "checkpoints", {"keep_best"});
      if (ck["keep_best"])
        if (auto v = P.at_least<int64_t>(P.integer(ck["keep_best"], "checkpoints.keep_best"), 0, ck["keep_best"],
                                         "checkpoints.keep_best"))
          s.checkpoints.keep_best = *v;
    }
  }
  if (const YAML::Node& cs = root["constraints"]) {
    // One condition, or a list; each "metric >= bound" or {metric, op, bound}.
    std::vector<YAML::Node> items;
    if (cs.IsSequence())
      for (const auto& c : cs) items.push_back(c);
    else
      items.push_back(cs);
    for (const auto& c : items) {
      try {
        s.constraints.push_back(constraint_from_json(yaml_to_json(c)));
      } catch (const ConfigError& e) {
        P.err(c, std::string("constraints: ") + e.what());
      }
    }
    P.note_line("constraints", cs);
  }
  if (const YAML::Node& ws = root["warm_start"]) {
    try {
      s.warm_start = WarmStartSpec::from_json(yaml_to_json(ws));
      if (s.warm_start->storage.empty() && s.warm_start->study == s.study)
        P.err(ws, "warm_start.study: a study cannot warm-start itself");
    } catch (const ConfigError& e) {
      P.err(ws, e.what());
    }
    P.note_line("warm_start", ws);
  }

  // The tuner and pruner check their own options; their messages gain the line here.
  if (P.errors.empty()) {
    try {
      if (s.tuner.rfind("nas_", 0) == 0) {
        // Architecture controllers search the space of the `nas:` section (docs/nas.md).
        if (s.nas_space.is_null()) throw ConfigError("tuner '" + s.tuner + "' needs a `nas:` section");
        s.tuner_params["space"] = s.nas_space;
        (void)nas::make_nas_tuner(s.tuner, s.tuner_params, s.seed);
      } else {
        (void)tuners::make_tuner(s.tuner, s.tuner_params, s.seed);
      }
    } catch (const std::exception& e) {
      P.err(root["tuner"] ? root["tuner"] : root, "tuner: " + std::string(e.what()));
    }
    try {
      (void)tuners::make_pruner(s.pruner, s.pruner_params);
    } catch (const std::exception& e) {
      P.err(root["pruner"] ? root["pruner"] : root, "pruner: " + std::string(e.what()));
    }
    if (s.objectives.size() > 1 && s.budget.target)
      P.err(root["budget"]["target"], "budget.target: only applies to a single objective");
  }
  s.lines = P.lines;
  if (!P.errors.empty()) throw ConfigError(join(P.errors, "\n"));
  return s;
}

SweepSpec load_sweep(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the sweep file (" + std::string(std::strerror(errno)) + ")");
  std::ostringstream os;
  os << in.rdbuf();
  fs::path dir = fs::absolute(path).parent_path();
  return parse_sweep(os.str(), path, dir.string());
}

StudyOptions SweepSpec::study_options() const {
  StudyOptions o;
  o.name = study;
  o.space = space;
  o.objectives = objectives;
  o.tuner = tuner;
  o.tuner_params = tuner_params;
  o.pruner = pruner;
  o.pruner_params = pruner_params;
  o.seed = seed;
  o.heartbeat_interval = heartbeat_s;
  o.stale_after = stale_after_s;
  o.retry_failed = retry_failed;
  o.constraints = constraints;
  o.study_attrs[kSweepTextAttr] = text;
  o.study_attrs[kSweepFileAttr] = file;
  o.study_attrs[kSweepDirAttr] = dir;
  return o;
}

RunOptions SweepSpec::run_options() const {
  RunOptions r;
  r.n_trials = budget.n_trials;
  r.timeout_s = budget.timeout_s;
  r.target = budget.target;
  r.max_failed = budget.max_failed;
  r.n_jobs = n_jobs;
  r.runs_dir = runs_dir;
  r.checkpoint_policy = checkpoints;
  return r;
}

namespace {

std::vector<std::string> constraint_metrics(const SweepSpec& s) {
  std::vector<std::string> out;
  for (const auto& c : s.constraints) out.push_back(c.metric);
  return out;
}

std::string line_of(const SweepSpec& s, const std::string& key) {
  auto it = s.lines.find(key);
  return it == s.lines.end() ? s.file : s.file + ":" + std::to_string(it->second);
}

}  // namespace

void check_evaluator(const SweepSpec& s, bool resolve_references) {
  const EvaluatorSpec& e = s.evaluator;
  if (e.kind == "command") {
    // The evaluator knows its own rules (placeholders, regex, PATH look-up); we add where in the file.
    try {
      CommandSpec spec = e.command;
      if (!s.nas_space.is_null())  // {arch} is the architecture's canonical string, known per trial
        for (auto& a : spec.argv)
          for (size_t pos; (pos = a.find("{arch}")) != std::string::npos;) a.replace(pos, 6, "arch");
      CommandEvaluator ev(spec, s.objectives, s.space);
      ev.validate(s.space);
    } catch (const ConfigError& ex) {
      throw ConfigError(line_of(s, "evaluator.command") + ": evaluator.command: " + ex.what());
    }
    return;
  }
  if (e.kind == "trainer") {
    std::error_code ec;
    if (!fs::exists(e.trainer.train_file, ec))
      throw ConfigError(line_of(s, "evaluator.train_file") + ": evaluator.train_file: '" + e.trainer.train_file +
                        "' does not exist");
    try {
      TrainerEvaluatorOptions o{e.trainer.train_file, e.trainer.settings, s.nas_space, s.nas_compile, s.storage,
                                constraint_metrics(s)};
      o.resolve_study_refs = resolve_references;
      TrainerEvaluator ev(o, s.objectives, s.space);
      ev.validate();
    } catch (const ConfigError& ex) {
      throw ConfigError(line_of(s, "evaluator.train_file") + ": evaluator: " + ex.what());
    }
  }
}

namespace {

// The command evaluator of a sweep with a `nas:` section: each trial's architecture decisions become its canonical
// string, stored as the trial attribute "arch", substituted for {arch} and passed as $KESTREL_ARCH (docs/nas.md).
// A CommandEvaluator is built per trial because {arch} is only known then; that costs a regex compile at most.
class ArchCommandEvaluator : public Evaluator {
 public:
  ArchCommandEvaluator(CommandSpec spec, std::vector<Objective> objectives, SearchSpace space,
                       std::shared_ptr<const nas::ArchSpace> arch)
      : spec_(std::move(spec)), objectives_(std::move(objectives)), space_(std::move(space)), arch_(std::move(arch)) {}

  void evaluate(TrialHandle& trial, const EvalContext& ctx) override {
    std::string canon = arch_->canonical(arch_->from_config(trial.config()));
    trial.set_attr("arch", canon);
    CommandSpec spec = spec_;
    // Under a shell the string is quoted: canonical cells contain '|' and '~'.
    std::string text = spec.shell ? "'" + canon + "'" : canon;
    for (auto& a : spec.argv)
      for (size_t pos = a.find("{arch}"); pos != std::string::npos; pos = a.find("{arch}", pos + text.size()))
        a.replace(pos, 6, text);
    spec.env["KESTREL_ARCH"] = canon;
    CommandEvaluator(spec, objectives_, space_).evaluate(trial, ctx);
  }
  std::string name() const override { return "command"; }

 private:
  CommandSpec spec_;
  std::vector<Objective> objectives_;
  SearchSpace space_;
  std::shared_ptr<const nas::ArchSpace> arch_;
};

}  // namespace

std::unique_ptr<Evaluator> make_evaluator(const SweepSpec& s) {
  const EvaluatorSpec& e = s.evaluator;
  if (e.kind == "command" && !s.nas_space.is_null())
    return std::make_unique<ArchCommandEvaluator>(e.command, s.objectives, s.space, nas::make_arch_space(s.nas_space));
  if (e.kind == "command") return std::make_unique<CommandEvaluator>(e.command, s.objectives, s.space);
  if (e.kind == "function")
    return std::make_unique<FunctionEvaluator>(make_benchmark_function(e.function.name, e.function.dim),
                                               e.function.options);
  if (e.kind == "trainer")
    return std::make_unique<TrainerEvaluator>(TrainerEvaluatorOptions{e.trainer.train_file, e.trainer.settings, s.nas_space, s.nas_compile, s.storage, constraint_metrics(s)},
                                              s.objectives, s.space);
  throw ConfigError(s.file + ": unknown evaluator kind '" + e.kind + "'");
}

}  // namespace kestrel::engine
