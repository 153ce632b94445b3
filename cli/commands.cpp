// The `kestrel` subcommands: running a sweep (run, resume, worker) and reading a study (status, trials, best,
// export, list), plus validate. Reading commands use the store directly and never write to it.
#include "cli/commands.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iomanip>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "common/error.hpp"
#include "engine/constraints.hpp"
#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "engine/sweep.hpp"
#include "store/sqlite_store.hpp"
#include "store/store.hpp"
#include "tuners/pbt.hpp"

namespace kestrel::cli {
namespace fs = std::filesystem;
using engine::SweepSpec;
using search::TrialState;

std::atomic<bool> g_stop_requested{false};

namespace {

// Overrides given on the command line of `run` travel with the study, so `resume` without a file repeats them.
constexpr const char* kOverridesAttr = "sweep.overrides";

// Lock-free atomics are async-signal-safe.
std::atomic<int> g_signal_count{0};

void on_signal(int) {
  g_stop_requested.store(true);
  if (g_signal_count.fetch_add(1) + 1 >= 2) {
    // A second signal means "now": running trials are left RUNNING and reclaimed by the next resume.
    const char msg[] = "\nkestrel: second interrupt, exiting now\n";
    ssize_t r = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(kExitInterrupted);
  }
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::shared_ptr<store::Store> open_storage(const std::string& url, double busy_timeout_s, bool must_exist) {
  std::string path;
  if (url.rfind("sqlite://", 0) == 0) path = url.substr(9);
  else if (url.find("://") == std::string::npos) path = url;
  else return store::open_store(url);
  if (path.empty()) throw StoreError("storage '" + url + "' names no file");
  std::error_code ec;
  if (must_exist && !fs::exists(path, ec))
    throw StoreError("no database at " + path + " (run a sweep first, or point --storage at the right file)");
  store::SqliteStoreOptions o;
  o.busy_timeout_s = busy_timeout_s;
  return std::make_shared<store::SqliteStore>(path, o);
}

// Picks the study: the one named, else the only one in the store.
store::StudyInfo pick_study(store::Store& st, const std::string& name, const std::string& url) {
  if (!name.empty()) {
    auto info = st.find_study(name);
    if (!info) {
      std::string names;
      for (const auto& s : st.list_studies()) names += (names.empty() ? "" : ", ") + s.name;
      throw ConfigError("no study '" + name + "' in " + url + (names.empty() ? " (it holds none)" : " (it holds: " + names + ")"));
    }
    return *info;
  }
  auto all = st.list_studies();
  if (all.empty()) throw ConfigError(url + " holds no study yet (start one with `kestrel run SWEEP.yaml`)");
  if (all.size() > 1) {
    std::string names;
    for (const auto& s : all) names += (names.empty() ? "" : ", ") + s.name;
    throw ConfigError(url + " holds several studies (" + names + "); choose one with --study NAME");
  }
  return all[0];
}

std::string attr(const store::StudyInfo& info, const std::string& key) {
  auto it = info.attrs.find(key);
  return it == info.attrs.end() ? "" : it->second;
}

// The sweep a study was started from (its stored text), or nullopt when it was not started from a sweep file.
std::optional<SweepSpec> stored_sweep(const store::StudyInfo& info) {
  std::string text = attr(info, engine::kSweepTextAttr);
  if (text.empty()) return std::nullopt;
  std::string file = attr(info, engine::kSweepFileAttr);
  return engine::parse_sweep(text, file.empty() ? "<stored sweep>" : file + " (stored copy)",
                             attr(info, engine::kSweepDirAttr));
}

void apply_overrides(SweepSpec& s, const nlohmann::json& o) {
  if (o.contains("n_trials")) s.budget.n_trials = o["n_trials"].get<int64_t>();
  if (o.contains("timeout")) s.budget.timeout_s = o["timeout"].get<double>();
  if (o.contains("seed")) s.seed = o["seed"].get<uint64_t>();
  if (o.contains("n_jobs")) s.n_jobs = o["n_jobs"].get<int>();
  if (o.contains("runs_dir")) s.runs_dir = o["runs_dir"].get<std::string>();
}

nlohmann::json overrides_of(const RunArgs& a) {
  nlohmann::json o = nlohmann::json::object();
  if (a.n_trials) o["n_trials"] = *a.n_trials;
  if (a.timeout_s) o["timeout"] = *a.timeout_s;
  if (a.seed) o["seed"] = *a.seed;
  if (a.jobs) o["n_jobs"] = *a.jobs;
  if (a.runs_dir) o["runs_dir"] = *a.runs_dir;
  return o;
}

std::string local_host() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) return "host";
  return host;
}

// Fails RUNNING trials whose worker was a process on this machine that no longer exists (killed, crashed), at
// once rather than after the heartbeat goes stale; retries follow the same chain rule as Study::reclaim_stale.
// A worker on another machine, or a pid that is alive (possibly reused), is left to the heartbeat rule.
int reclaim_dead_local_workers(engine::Study& study, int retry_failed) {
  const std::string host = local_host();
  int n = 0;
  for (const auto& t : study.trials()) {
    if (t.state != TrialState::Running) continue;
    auto colon = t.worker.rfind(':');
    if (colon == std::string::npos || t.worker.substr(0, colon) != host) continue;
    pid_t pid = 0;
    try {
      pid = static_cast<pid_t>(std::stol(t.worker.substr(colon + 1)));
    } catch (const std::exception&) {
      continue;
    }
    if (pid <= 0 || pid == getpid()) continue;
    if (::kill(pid, 0) == 0 || errno == EPERM) continue;
    try {
      study.store().finish(t.id, TrialState::Failed, {},
                           "lost: worker " + t.worker + " ended while the trial ran (interrupted)");
    } catch (const TrialFinishedError&) {
      continue;  // another process got there first
    }
    ++n;
    int attempt = 0;
    if (auto it = t.attrs.find("retry_count"); it != t.attrs.end()) attempt = std::atoi(it->second.c_str());
    if (attempt >= retry_failed) continue;
    auto attrs = t.attrs;
    attrs["retry_of"] = std::to_string(t.number);
    attrs["retry_count"] = std::to_string(attempt + 1);
    study.enqueue(t.config, attrs);
  }
  return n;
}

// Counts trials in flight for the progress display; evaluation itself is the wrapped evaluator's.
class TrackingEvaluator : public engine::Evaluator {
 public:
  TrackingEvaluator(engine::Evaluator& inner, Progress& p) : inner_(inner), progress_(p) {}
  void evaluate(engine::TrialHandle& trial, const engine::EvalContext& ctx) override {
    progress_.trial_started();
    inner_.evaluate(trial, ctx);
  }
  std::string name() const override { return inner_.name(); }

 private:
  engine::Evaluator& inner_;
  Progress& progress_;
};

std::optional<Trial> best_of(const std::vector<Trial>& trials, const std::vector<search::Objective>& objs) {
  const Trial* best = nullptr;
  double s = objs.empty() ? 1.0 : search::minimize_sign(objs[0].direction);
  // Results of this study only: feasible under its constraints, and not warm-start priors (measured elsewhere).
  for (const auto& t : trials)
    if (t.state == TrialState::Complete && !t.values.empty() && std::isfinite(t.values[0]) &&
        engine::is_feasible(t) && !engine::is_warm_start(t) && (!best || s * t.values[0] < s * best->values[0]))
      best = &t;
  if (!best) return std::nullopt;
  return *best;
}

std::vector<Trial> pareto(const std::vector<Trial>& trials, const std::vector<search::Objective>& objs) {
  std::vector<const Trial*> done;
  for (const auto& t : trials)
    if (t.state == TrialState::Complete && t.values.size() == objs.size() && engine::is_feasible(t) &&
        !engine::is_warm_start(t))
      done.push_back(&t);
  auto dominates = [&](const Trial& a, const Trial& b) {
    bool strictly = false;
    for (size_t k = 0; k < objs.size(); ++k) {
      double s = search::minimize_sign(objs[k].direction);
      if (s * a.values[k] > s * b.values[k]) return false;
      if (s * a.values[k] < s * b.values[k]) strictly = true;
    }
    return strictly;
  };
  std::vector<Trial> front;
  for (const Trial* a : done) {
    bool dominated = false;
    for (const Trial* b : done)
      if (b != a && dominates(*b, *a)) {
        dominated = true;
        break;
      }
    if (!dominated) front.push_back(*a);
  }
  return front;
}

std::string describe_param(const search::ParamSpec& p) {
  std::ostringstream os;
  os << p.name << " ";
  switch (p.kind) {
    case search::ParamKind::Float:
    case search::ParamKind::Int:
      os << (p.kind == search::ParamKind::Float ? "float" : "int") << " [" << short_number(p.low) << ", "
         << short_number(p.high) << "]";
      if (p.log) os << " log";
      if (p.step) os << " step " << short_number(*p.step);
      break;
    case search::ParamKind::Categorical: {
      os << "{";
      for (size_t i = 0; i < p.choices.size(); ++i) os << (i ? ", " : "") << search::to_string(p.choices[i]);
      os << "}";
      break;
    }
    case search::ParamKind::Fixed: os << "= " << search::to_string(p.fixed); break;
  }
  if (p.condition) {
    os << " if " << p.condition->parent << " in {";
    for (size_t i = 0; i < p.condition->values.size(); ++i)
      os << (i ? ", " : "") << search::to_string(p.condition->values[i]);
    os << "}";
  }
  return os.str();
}

std::string objectives_text(const std::vector<search::Objective>& objs) {
  std::string s;
  for (const auto& o : objs) s += (s.empty() ? "" : ", ") + o.name + " (" + search::to_string(o.direction) + ")";
  return s;
}

struct Opened {
  std::string url;
  std::shared_ptr<store::Store> store;
  store::StudyInfo info;
};

Opened open_for_reading(const GlobalOptions& g) {
  Opened o;
  o.url = g.storage.empty() ? default_storage() : g.storage;
  o.store = open_storage(o.url, g.busy_timeout_s, /*must_exist=*/true);
  o.info = pick_study(*o.store, g.study, o.url);
  return o;
}

}  // namespace

std::string default_storage() { return "sqlite://" + (fs::current_path() / "kestrel.db").string(); }

int run_sweep(const GlobalOptions& g, const RunArgs& a, RunMode mode) {
  // 1. The sweep: from the file, or (resume without a file) from the copy stored with the study.
  std::optional<SweepSpec> spec;
  std::string url = g.storage;
  if (!a.sweep.empty()) {
    spec = engine::load_sweep(a.sweep);
    if (url.empty()) url = spec->storage;
  }
  if (url.empty()) url = default_storage();
  // "This sweep's store" (init_from and warm_start without a storage of their own) is the one actually used.
  if (spec) spec->storage = url;
  std::string study_name = !g.study.empty() ? g.study : spec ? spec->study : "";

  // Everything that can be refused is checked before the store is touched.
  if (spec) engine::check_evaluator(*spec);
  auto st = open_storage(url, g.busy_timeout_s, /*must_exist=*/mode == RunMode::Resume);

  std::optional<store::StudyInfo> existing;
  if (mode == RunMode::Resume && study_name.empty()) existing = pick_study(*st, "", url);
  else existing = st->find_study(study_name);
  // Running the same, unchanged sweep file again continues its study (so `scripts/quickstart` can be re-run);
  // a different sweep under a taken name is refused rather than mixed into someone else's history.
  if (mode == RunMode::Run && existing && spec && attr(*existing, engine::kSweepTextAttr) == spec->text &&
      attr(*existing, engine::kSweepDirAttr) == spec->dir)
    mode = RunMode::Resume;
  if (mode == RunMode::Run && existing)
    throw ConfigError("study '" + study_name + "' already exists in " + url + " from another or a changed sweep file: continue it with `kestrel resume " +
                      (a.sweep.empty() ? "" : a.sweep + " ") + "--study " + study_name +
                      "`, add a process with `kestrel worker`, or start a new one with --study NEW_NAME");
  if (mode == RunMode::Resume && !existing)
    throw ConfigError("no study '" + study_name + "' in " + url + " to resume (start it with `kestrel run`)");

  nlohmann::json overrides = nlohmann::json::object();
  if (existing) {
    study_name = existing->name;
    std::string stored = attr(*existing, kOverridesAttr);
    if (!stored.empty()) overrides = nlohmann::json::parse(stored, nullptr, false);
    if (overrides.is_discarded() || !overrides.is_object()) overrides = nlohmann::json::object();
    if (!spec) {
      spec = stored_sweep(*existing);
      if (!spec)
        throw ConfigError("study '" + study_name + "' was not started from a sweep file; give it: kestrel resume SWEEP.yaml");
      spec->storage = url;
      engine::check_evaluator(*spec);
    }
  }
  if (a.seed && existing && overrides.value("seed", spec->seed) != *a.seed)
    throw ConfigError("--seed cannot change the seed of an existing study (its tuner would no longer match its history)");
  const nlohmann::json given = overrides_of(a);
  for (const auto& [k, v] : given.items()) overrides[k] = v;
  apply_overrides(*spec, overrides);
  spec->study = study_name;

  engine::StudyOptions so = spec->study_options();
  so.study_attrs[kOverridesAttr] = overrides.dump();
  // Several workers may create the study at the same instant; the loser loads the winner's.
  std::unique_ptr<engine::Study> study;
  try {
    study = std::make_unique<engine::Study>(st, so);
  } catch (const StoreError&) {
    if (mode != RunMode::Worker || !st->find_study(study_name)) throw;
    study = std::make_unique<engine::Study>(st, so);
  }
  if (!study->created() && !given.empty()) st->set_study_attr(study->id(), kOverridesAttr, overrides.dump());

  int reclaimed = reclaim_dead_local_workers(*study, spec->retry_failed);
  // Priors from another study, copied once per study (engine/warm_start.hpp). Workers leave it to run/resume, so
  // two processes never copy at the same time.
  std::optional<engine::WarmStartReport> warm;
  if (spec->warm_start && mode != RunMode::Worker) warm = engine::warm_start(*study, *spec->warm_start);

  auto evaluator = engine::make_evaluator(*spec);
  engine::RunOptions ro = spec->run_options();
  auto trials = study->trials();
  int64_t done_before = 0;
  for (const auto& t : trials)
    if ((t.state == TrialState::Complete || t.state == TrialState::Pruned) && !engine::is_warm_start(t)) ++done_before;
  auto best_before = best_of(trials, spec->objectives);

  bool live = ::isatty(STDOUT_FILENO) == 1;
  std::cout << "kestrel: " << (study->created() ? "started" : "continuing") << " study '" << study_name << "' in " << url
            << " (" << trials.size() << " trials stored; tuner " << spec->tuner << ", evaluator "
            << spec->evaluator.kind << ", " << ro.n_jobs << (ro.n_jobs == 1 ? " job" : " jobs");
  if (ro.n_trials > 0) std::cout << ", budget " << ro.n_trials << " trials";
  if (ro.timeout_s > 0) std::cout << ", timeout " << short_duration(ro.timeout_s);
  std::cout << ")\n";
  if (reclaimed > 0) std::cout << "kestrel: " << reclaimed << " trial(s) of ended workers marked FAILED\n";
  if (warm) std::cout << "kestrel: " << warm->summary() << "\n";
  std::cout.flush();

  Progress progress(std::cout, live, spec->objectives, ro.n_trials, done_before,
                    best_before ? std::optional<double>(best_before->values[0]) : std::nullopt);
  TrackingEvaluator tracking(*evaluator, progress);
  g_stop_requested.store(false);
  install_signal_handlers();
  ro.stop = &g_stop_requested;
  ro.on_trial_end = [&](const Trial& t) { progress.trial_ended(t); };
  engine::RunSummary sum = engine::optimize(*study, tracking, ro);
  progress.stop();

  std::cout << "kestrel: stopped (" << sum.stop_reason << ") after " << short_duration(sum.elapsed_s) << ": "
            << sum.completed << " complete, " << sum.pruned << " pruned, " << sum.failed << " failed in this run\n";
  if (spec->objectives.size() == 1) {
    if (auto b = study->best_trial())
      std::cout << "best: trial " << b->number << " " << values_inline(*b, spec->objectives) << "  "
                << params_inline(b->config) << "\n";
  } else {
    std::cout << "pareto front: " << study->pareto_front().size() << " trial(s) (see `kestrel best`)\n";
  }
  std::cout.flush();
  if (g_stop_requested.load() || sum.stop_reason == "stopped") {
    std::cerr << "kestrel: interrupted; running trials were stopped and marked FAILED. Continue with `kestrel resume --study "
              << study_name << (g.storage.empty() ? "" : " --storage " + url) << "`\n";
    return kExitInterrupted;
  }
  if (sum.stop_reason == "max_failed") {
    std::cerr << "kestrel: stopped because " << sum.failed << " trials failed (budget.max_failed); see `kestrel trials`\n";
    return kExitRuntime;
  }
  return kExitOk;
}

int show_status(const GlobalOptions& g) {
  Opened o = open_for_reading(g);
  auto trials = o.store->trials(o.info.id);
  std::map<TrialState, int64_t> counts;
  for (const auto& t : trials) counts[t.state]++;
  std::cout << "study:      " << o.info.name << "\n";
  std::cout << "storage:    " << o.url << "\n";
  std::cout << "objectives: " << objectives_text(o.info.objectives) << "\n";
  try {
    auto space = engine::space_from_json(nlohmann::json::parse(o.info.space_json));
    std::cout << "space:      ";
    for (size_t i = 0; i < space.params().size(); ++i)
      std::cout << (i ? "\n            " : "") << describe_param(space.params()[i]);
    std::cout << "\n";
  } catch (const std::exception&) {
    std::cout << "space:      (unreadable)\n";
  }
  std::optional<SweepSpec> spec;
  try {
    spec = stored_sweep(o.info);
  } catch (const std::exception&) {
  }
  if (spec) {
    std::string ov = attr(o.info, kOverridesAttr);
    if (!ov.empty()) {
      auto j = nlohmann::json::parse(ov, nullptr, false);
      if (j.is_object()) apply_overrides(*spec, j);
    }
    std::cout << "sweep:      " << attr(o.info, engine::kSweepFileAttr) << " (tuner " << spec->tuner << ", pruner "
              << spec->pruner << ", evaluator " << spec->evaluator.kind << ", seed " << spec->seed << ")\n";
  }
  std::cout << "trials:     " << trials.size() << " (";
  bool first = true;
  for (TrialState s : {TrialState::Complete, TrialState::Pruned, TrialState::Failed, TrialState::Running,
                       TrialState::Waiting}) {
    std::cout << (first ? "" : ", ") << search::to_string(s) << " " << counts[s];
    first = false;
  }
  std::cout << ")\n";
  if (spec && spec->budget.n_trials > 0)
    std::cout << "budget:     " << counts[TrialState::Complete] + counts[TrialState::Pruned] << "/"
              << spec->budget.n_trials << " trials done\n";
  if (o.info.objectives.size() <= 1) {
    if (auto b = best_of(trials, o.info.objectives))
      std::cout << "best:       trial " << b->number << " " << values_inline(*b, o.info.objectives) << "  "
                << params_inline(b->config) << "\n";
    else
      std::cout << "best:       none yet\n";
  } else {
    std::cout << "pareto:     " << pareto(trials, o.info.objectives).size() << " trial(s) on the front\n";
  }
  return kExitOk;
}

int show_trials(const GlobalOptions& g, bool json) {
  Opened o = open_for_reading(g);
  auto trials = o.store->trials(o.info.id);
  if (json) {
    auto a = nlohmann::json::array();
    for (const auto& t : trials) a.push_back(trial_json(t, o.info.objectives, false));
    std::cout << a.dump(2) << "\n";
  } else {
    print_table(std::cout, trials, o.info.objectives);
  }
  return kExitOk;
}

int show_best(const GlobalOptions& g, bool json) {
  Opened o = open_for_reading(g);
  auto trials = o.store->trials(o.info.id);
  std::vector<Trial> best;
  if (o.info.objectives.size() <= 1) {
    if (auto b = best_of(trials, o.info.objectives)) best.push_back(*b);
  } else {
    best = pareto(trials, o.info.objectives);
  }
  if (best.empty()) {
    int64_t complete = 0, infeasible = 0;
    for (const auto& t : trials)
      if (t.state == TrialState::Complete && !engine::is_warm_start(t)) {
        ++complete;
        infeasible += !engine::is_feasible(t);
      }
    if (complete > 0 && infeasible == complete)
      std::cerr << "kestrel: study '" << o.info.name << "' has no feasible trial: all " << complete
                << " COMPLETE trial(s) violate its constraints (see `kestrel trials`)\n";
    else
      std::cerr << "kestrel: study '" << o.info.name << "' has no COMPLETE trial yet\n";
    return kExitRuntime;
  }
  if (json) {
    if (o.info.objectives.size() <= 1) {
      std::cout << trial_json(best[0], o.info.objectives, false).dump(2) << "\n";
    } else {
      auto a = nlohmann::json::array();
      for (const auto& t : best) a.push_back(trial_json(t, o.info.objectives, false));
      std::cout << a.dump(2) << "\n";
    }
    return kExitOk;
  }
  if (best.size() > 1) std::cout << "pareto front of study '" << o.info.name << "' (" << best.size() << " trials):\n";
  for (const auto& t : best) {
    std::cout << "trial " << t.number << ": " << values_inline(t, o.info.objectives) << "\n";
    for (const auto& [k, v] : t.config) std::cout << "  " << k << " = " << search::to_string(v) << "\n";
    // The trainer evaluator measures the held-out test set once per trial; show it beside the tuned metric.
    if (auto it = t.attrs.find("test_accuracy"); it != t.attrs.end())
      std::cout << "  (test accuracy " << it->second << ")\n";
    if (auto it = o.info.attrs.find("constraints"); it != o.info.attrs.end())
      std::cout << "  (feasible under constraints " << it->second << ")\n";
  }
  return kExitOk;
}

int export_trials(const GlobalOptions& g, const std::string& format, const std::string& output) {
  if (format != "csv" && format != "json") throw ConfigError("--format must be csv or json (got '" + format + "')");
  Opened o = open_for_reading(g);
  auto trials = o.store->trials(o.info.id);
  std::ostringstream os;
  if (format == "csv") {
    write_csv(os, trials, o.info.objectives);
  } else {
    nlohmann::json j;
    j["study"] = o.info.name;
    auto objs = nlohmann::json::array();
    for (const auto& ob : o.info.objectives)
      objs.push_back({{"name", ob.name}, {"direction", search::to_string(ob.direction)}});
    j["objectives"] = objs;
    j["trials"] = nlohmann::json::array();
    for (const auto& t : trials) j["trials"].push_back(trial_json(t, o.info.objectives, true));
    os << j.dump(2) << "\n";
  }
  if (output.empty() || output == "-") {
    std::cout << os.str();
    return kExitOk;
  }
  // Written to a temporary file and renamed, so a failed export never leaves half a file behind.
  std::string tmp = output + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw Error("cannot write " + output + " (" + std::strerror(errno) + ")");
    f << os.str();
    if (!f.flush()) throw Error("cannot write " + output);
  }
  fs::rename(tmp, output);
  std::cerr << "kestrel: wrote " << trials.size() << " trials to " << output << "\n";
  return kExitOk;
}

int validate_sweep(const std::string& path) {
  SweepSpec s = engine::load_sweep(path);
  // Another study a trial starts from (init_from {study, trial}) may legitimately not exist yet; `run` checks it.
  engine::check_evaluator(s, /*resolve_references=*/false);
  std::cout << path << ": ok\n";
  std::cout << "  study '" << s.study << "', " << s.space.size() << " parameter(s), "
            << (s.space.is_finite() ? std::to_string(s.space.cardinality()) + " configurations" : "continuous")
            << "; objectives " << objectives_text(s.objectives) << "\n";
  std::cout << "  tuner " << s.tuner << ", pruner " << s.pruner << ", evaluator " << s.evaluator.kind << ", "
            << s.n_jobs << (s.n_jobs == 1 ? " job" : " jobs");
  if (s.budget.n_trials > 0) std::cout << ", " << s.budget.n_trials << " trials";
  if (s.budget.timeout_s > 0) std::cout << ", timeout " << short_duration(s.budget.timeout_s);
  std::cout << "\n";
  return kExitOk;
}

int list_studies(const GlobalOptions& g, bool json) {
  std::string url = g.storage.empty() ? default_storage() : g.storage;
  auto st = open_storage(url, g.busy_timeout_s, /*must_exist=*/true);
  auto studies = st->list_studies();
  auto out = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : studies) {
    auto trials = st->trials(s.id);
    int64_t complete = 0;
    for (const auto& t : trials) complete += t.state == TrialState::Complete;
    std::string best = "-";
    std::optional<Trial> b;
    if (s.objectives.size() <= 1) b = best_of(trials, s.objectives);
    if (b) best = short_number(b->values[0]);
    rows.push_back({s.name, std::to_string(trials.size()), std::to_string(complete), best});
    out.push_back({{"name", s.name},
                   {"trials", trials.size()},
                   {"complete", complete},
                   {"best", b ? nlohmann::json(b->values[0]) : nlohmann::json(nullptr)}});
  }
  if (json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (rows.empty()) {
    std::cout << "no studies in " << url << "\n";
    return kExitOk;
  }
  size_t w = 5;
  for (const auto& r : rows) w = std::max(w, r[0].size());
  std::cout << std::left << std::setw(static_cast<int>(w)) << "study" << "  trials  complete  best\n";
  for (const auto& r : rows)
    std::cout << std::left << std::setw(static_cast<int>(w)) << r[0] << "  " << std::right << std::setw(6) << r[1]
              << "  " << std::setw(8) << r[2] << "  " << r[3] << std::left << "\n";
  return kExitOk;
}

}  // namespace kestrel::cli

namespace kestrel::cli {

int show_pbt_schedule(const GlobalOptions& g) {
  Opened o = open_for_reading(g);
  auto trials = o.store->trials(o.info.id);
  search::SearchSpace space = engine::space_from_json(nlohmann::json::parse(o.info.space_json));
  tuners::History h;
  h.space = &space;
  h.objectives = o.info.objectives;
  for (const auto& t : trials) h.trials.push_back(&t);
  auto schedule = tuners::pbt_schedule(h);
  if (schedule.empty()) {
    std::cerr << "kestrel: study '" << o.info.name << "' has no finished PBT member\n";
    return kExitRuntime;
  }
  std::cout << tuners::format_pbt_schedule(schedule);
  return kExitOk;
}

}  // namespace kestrel::cli
