// CommandEvaluator: placeholder expansion, metric-line parsing (key=value, regex, JSON lines), and the loop that
// watches one child (output, pruning, per-trial timeout, sweep stop) until it ends.
#include "engine/command_evaluator.hpp"

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "engine/process.hpp"

namespace kestrel::engine {
namespace fs = std::filesystem;

MetricFormat metric_format_from_string(const std::string& s) {
  if (s == "key_value" || s == "katib" || s == "kv") return MetricFormat::KeyValue;
  if (s == "regex") return MetricFormat::Regex;
  if (s == "json" || s == "json_lines" || s == "jsonl") return MetricFormat::JsonLines;
  throw ConfigError("unknown metric format '" + s + "' (use key_value, regex or json)");
}

std::string to_string(MetricFormat f) {
  switch (f) {
    case MetricFormat::KeyValue: return "key_value";
    case MetricFormat::Regex: return "regex";
    case MetricFormat::JsonLines: return "json";
  }
  return "?";
}

namespace {

bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// Calls fn(name, begin, end) for each "{identifier}" in s (begin/end bound the braces).
template <class F>
void for_each_placeholder(const std::string& s, F&& fn) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '{' || i + 1 >= s.size() || !is_ident_start(s[i + 1])) continue;
    size_t j = i + 1;
    while (j < s.size() && is_ident_char(s[j])) ++j;
    if (j < s.size() && s[j] == '}') {
      fn(s.substr(i + 1, j - i - 1), i, j + 1);
      i = j;
    }
  }
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string fmt_seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", s);
  return b;
}

// Whole-string number parse; accepts nan/inf as strtod does.
std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_flag(const std::string& s) {
  if (s == "true" || s == "True" || s == "yes") return 1.0;
  if (s == "false" || s == "False" || s == "no") return 0.0;
  return parse_number(s);
}

// The metrics found on one stdout line.
struct ParsedLine {
  std::map<std::string, double> metrics;  // without the step and final keys
  std::optional<double> step;
  bool final = false;
};

// Katib's default metrics format: "name=value" pairs; the name may hold letters, digits, _ - . /
const std::regex& key_value_regex() {
  static const std::regex re(R"(([A-Za-z_][A-Za-z0-9_.\-/]*)\s*=\s*([^\s,;]+))");
  return re;
}

// Python's json.dumps writes NaN/Infinity bare, which is not JSON; map them to marker strings and back.
nlohmann::json parse_json_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_discarded()) return j;
  static const std::regex bare(R"((-?)\b(NaN|Infinity)\b)");
  std::string fixed = std::regex_replace(line, bare, "\"__kestrel_$1$2\"");
  return nlohmann::json::parse(fixed, nullptr, false);
}

std::optional<double> json_number(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "__kestrel_NaN" || s == "__kestrel_-NaN") return std::nan("");
    if (s == "__kestrel_Infinity") return HUGE_VAL;
    if (s == "__kestrel_-Infinity") return -HUGE_VAL;
  }
  return std::nullopt;
}

}  // namespace

CommandEvaluator::CommandEvaluator(CommandSpec spec, std::vector<search::Objective> objectives, SearchSpace space)
    : spec_(std::move(spec)), objectives_(std::move(objectives)), space_(std::move(space)) {
  if (spec_.argv.empty()) throw ConfigError("command: the argv list is empty");
  if (objectives_.empty()) throw ConfigError("command: at least one objective is needed");
  if (spec_.format == MetricFormat::Regex) {
    try {
      regex_ = std::regex(spec_.regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw ConfigError("command: metrics regex '" + spec_.regex + "' is invalid: " + e.what());
    }
    if (regex_.mark_count() < 2)
      throw ConfigError("command: metrics regex '" + spec_.regex +
                        "' needs two groups, (name) and (value), e.g. ([a-z_]+)=([-+.0-9eE]+)");
  }
}

std::string CommandEvaluator::param_env_name(const std::string& param) {
  std::string out = "KESTREL_PARAM_";
  for (char c : param) out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c)) : '_';
  return out;
}

void CommandEvaluator::validate(const SearchSpace& space) const {
  static const std::set<std::string> builtin = {"trial", "trial_dir", "budget", "checkpoint_dir", "restore_from"};
  for (size_t i = 0; i < spec_.argv.size(); ++i) {
    for_each_placeholder(spec_.argv[i], [&](const std::string& name, size_t, size_t) {
      if (builtin.count(name) || space.index_of(name)) return;
      std::string known;
      for (const auto& p : space.params()) known += " {" + p.name + "}";
      throw ConfigError("command: argv[" + std::to_string(i) + "] '" + spec_.argv[i] + "' uses unknown placeholder {" +
                        name + "}; known:" + known +
                        " {trial} {trial_dir} {budget} {checkpoint_dir} {restore_from}");
    });
  }
  if (spec_.shell) {
    resolve_executable("/bin/sh");
    return;
  }
  if (spec_.argv[0].find('{') != std::string::npos) return;  // decided per trial
  resolve_executable(spec_.argv[0], spec_.cwd);
}

std::vector<std::string> CommandEvaluator::expand_argv(const Config& config, int64_t trial_number,
                                                       const std::string& trial_dir,
                                                       const std::optional<double>& budget,
                                                       const std::string& checkpoint_dir,
                                                       const std::string& restore_from) const {
  auto value_of = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "trial") return std::to_string(trial_number);
    if (name == "trial_dir") return trial_dir;
    if (name == "checkpoint_dir") return checkpoint_dir;
    if (name == "restore_from") return restore_from;
    if (name == "budget") return budget ? search::to_string(search::Value{*budget}) : std::string();
    if (auto it = config.find(name); it != config.end()) return search::to_string(it->second);
    if (space_.index_of(name)) return std::string();  // inactive conditional parameter
    return std::nullopt;
  };
  std::vector<std::string> out;
  for (const auto& arg : spec_.argv) {
    std::string s;
    size_t pos = 0;
    for_each_placeholder(arg, [&](const std::string& name, size_t b, size_t e) {
      auto v = value_of(name);
      if (!v) return;  // not ours: left as written
      s.append(arg, pos, b - pos);
      s += spec_.shell ? shell_quote(*v) : *v;
      pos = e;
    });
    s.append(arg, pos, std::string::npos);
    out.push_back(std::move(s));
  }
  if (spec_.shell) {
    std::string joined;
    for (size_t i = 0; i < out.size(); ++i) joined += (i ? " " : "") + out[i];
    return {"/bin/sh", "-c", joined};
  }
  return out;
}

void CommandEvaluator::evaluate(TrialHandle& trial, const EvalContext& ctx) {
  const std::string& dir = ctx.trial_dir;
  std::optional<double> budget = trial.budget();

  // Inputs: params.json and the environment.
  SpawnOptions so;
  so.argv = expand_argv(trial.config(), trial.number(), dir, budget, ctx.checkpoint_dir,
                        ctx.restore_from.value_or(""));
  so.cwd = spec_.cwd;
  so.env = spec_.env;
  for (const auto& [k, v] : ctx.env) so.env[k] = v;
  for (const auto& [k, v] : trial.config()) so.env[param_env_name(k)] = search::to_string(v);
  so.env["KESTREL_TRIAL_NUMBER"] = std::to_string(trial.number());
  so.env["KESTREL_TRIAL_DIR"] = dir;
  if (budget) so.env["KESTREL_BUDGET"] = search::to_string(search::Value{*budget});
  std::FILE* out_log = nullptr;
  std::FILE* err_log = nullptr;
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::ofstream pj(fs::path(dir) / "params.json");
    nlohmann::json params = search::config_to_json(trial.config());
    if (!ctx.checkpoint_dir.empty())
      params["_kestrel"] = {{"checkpoint_dir", ctx.checkpoint_dir},
                            {"restore_from", ctx.restore_from ? nlohmann::json(*ctx.restore_from) : nlohmann::json()},
                            {"budget", budget ? nlohmann::json(*budget) : nlohmann::json()}};
    pj << params.dump(2) << "\n";
    if (!pj) {
      trial.tell_failed("cannot write " + (fs::path(dir) / "params.json").string());
      return;
    }
    so.env["KESTREL_PARAMS_FILE"] = (fs::path(dir) / "params.json").string();
    out_log = std::fopen((fs::path(dir) / "stdout.log").c_str(), "w");
    err_log = std::fopen((fs::path(dir) / "stderr.log").c_str(), "w");
  }
  struct Closer {
    std::FILE*& f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } c1{out_log}, c2{err_log};

  // Parsing state.
  std::map<std::string, double> last;        // last value of each metric
  std::map<std::string, int64_t> last_step;  // the step it came with
  std::map<std::string, double> final_values;
  bool have_final = false;
  int64_t step = -1, lines = 0, garbage = 0;
  bool prune = false;
  int64_t prune_step = -1;
  std::string err_tail;

  auto parse = [&](const std::string& line) -> std::optional<ParsedLine> {
    ParsedLine p;
    auto take = [&](const std::string& name, std::optional<double> v) {
      if (!v) return;
      if (name == spec_.step_key)
        p.step = v;
      else if (name == spec_.final_key)
        p.final = *v != 0.0;
      else
        p.metrics[name] = *v;
    };
    if (spec_.format == MetricFormat::JsonLines) {
      size_t first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] != '{') return std::nullopt;
      auto j = parse_json_line(line);
      if (!j.is_object()) return std::nullopt;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == spec_.final_key && it->is_boolean())
          p.final = it->get<bool>();
        else
          take(it.key(), json_number(*it));
      }
    } else {
      const std::regex& re = spec_.format == MetricFormat::Regex ? regex_ : key_value_regex();
      for (std::sregex_iterator it(line.begin(), line.end(), re), end; it != end; ++it) {
        std::string name = (*it)[1].str(), value = (*it)[2].str();
        take(name, name == spec_.final_key ? parse_flag(value) : parse_number(value));
      }
    }
    if (p.metrics.empty()) return std::nullopt;
    return p;
  };

  auto on_line = [&](const std::string& line) {
    if (prune) return;
    ++lines;
    auto p = parse(line);
    if (!p) {
      if (line.find_first_not_of(" \t") != std::string::npos) ++garbage;
      return;
    }
    if (p->final) {
      for (const auto& [k, v] : p->metrics) final_values[k] = v;
      have_final = true;
      return;
    }
    step = p->step ? static_cast<int64_t>(std::llround(*p->step)) : step + 1;
    std::map<std::string, double> finite;
    for (const auto& [k, v] : p->metrics) {
      last[k] = v;
      last_step[k] = step;
      if (std::isfinite(v)) finite[k] = v;  // a store cannot hold NaN; the final check reports it instead
    }
    if (finite.empty()) return;
    trial.report(step, finite);
    if (trial.should_prune()) {
      prune = true;
      prune_step = step;
    }
  };

  LineSplitter out_lines;
  auto on_stdout = [&](std::string_view chunk) {
    if (out_log) std::fwrite(chunk.data(), 1, chunk.size(), out_log);
    out_lines.feed(chunk, on_line);
  };
  auto on_stderr = [&](std::string_view chunk) {
    if (err_log) std::fwrite(chunk.data(), 1, chunk.size(), err_log);
    err_tail.append(chunk);
    if (err_tail.size() > 2 * spec_.stderr_tail) err_tail.erase(0, err_tail.size() - spec_.stderr_tail);
  };

  std::unique_ptr<ChildProcess> child;
  try {
    child = std::make_unique<ChildProcess>(so);
  } catch (const EvalError& e) {
    trial.tell_failed(e.what());
    return;
  }

  enum class End { Exited, Pruned, Timeout, Stopped } end = End::Exited;
  auto start = std::chrono::steady_clock::now();
  bool pipes_open = true;
  for (;;) {
    if (pipes_open)
      pipes_open = child->pump(0.05, on_stdout, on_stderr);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (prune) {
      end = End::Pruned;
      break;
    }
    if (child->poll_exit()) {
      // Whatever the command wrote before exiting is in the pipes now.
      if (pipes_open) child->pump(0, on_stdout, on_stderr);
      break;
    }
    if (ctx.stopping()) {
      end = End::Stopped;
      break;
    }
    if (spec_.timeout_s > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= spec_.timeout_s) {
      end = End::Timeout;
      break;
    }
  }
  ExitStatus st = end == End::Exited ? child->status() : child->terminate(spec_.grace_s);
  // Descendants still in the group (a backgrounded helper) end with the trial.
  child->signal_group(SIGKILL);
  child->close_pipes();
  if (end == End::Exited && !prune) out_lines.finish(on_line);
  if (out_log) std::fflush(out_log);
  if (err_log) std::fflush(err_log);

  auto tail = [&]() -> std::string {
    std::string t = err_tail;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    if (t.size() > spec_.stderr_tail) t = "..." + t.substr(t.size() - spec_.stderr_tail);
    return t.empty() ? "" : "; stderr: " + t;
  };

  if (prune || end == End::Pruned) {
    trial.tell_pruned("pruned at step " + std::to_string(prune_step));
    return;
  }
  if (end == End::Timeout) {
    trial.tell_failed("timeout after " + fmt_seconds(spec_.timeout_s) + " s");
    return;
  }
  if (end == End::Stopped) {
    trial.tell_failed("stopped: the sweep was interrupted");
    return;
  }
  if (!st.ok()) {
    trial.tell_failed(st.describe() + tail());
    return;
  }
  std::vector<double> values;
  for (const auto& o : objectives_) {
    std::optional<double> v;
    int64_t at = -1;
    if (auto f = final_values.find(o.name); have_final && f != final_values.end()) {
      v = f->second;
    } else if (auto l = last.find(o.name); l != last.end()) {
      v = l->second;
      at = last_step[o.name];
    }
    if (!v) {
      trial.tell_failed("no objective metric '" + o.name + "' printed (" + std::to_string(lines) +
                        " lines on stdout, " + std::to_string(garbage) + " not understood as metrics)" + tail());
      return;
    }
    if (!std::isfinite(*v)) {
      trial.tell_failed("objective '" + o.name + "' is " + (std::isnan(*v) ? "NaN" : "infinite") +
                        (at >= 0 ? " (step " + std::to_string(at) + ")" : " (final line)"));
      return;
    }
    values.push_back(*v);
  }
  trial.tell(values);
}

}  // namespace kestrel::engine
