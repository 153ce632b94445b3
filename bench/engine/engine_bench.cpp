// engine_bench: per-trial engine overhead (Study::ask + tell with the random tuner and a trivial objective, and the
// same through optimize()) at N stored trials, in SQLite ":memory:" and in a SQLite file; and whole-process resume.
//
// Usage: engine_bench [--dir DIR] [--sizes 1000,10000] [--measure 1000] [--stores memory,file]
//        engine_bench --fill FILE.db --trials N       (makes a study of N finished trials for the resume timing)
//        engine_bench --resume FILE.db                (open + load + first ask + tell, then exit; time it outside)
// Prints one JSON object per line. Plain std::chrono timing: the figures are wanted at given stored sizes, and
// Debian's libbenchmark is a debug build.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runner.hpp"
#include "engine/study.hpp"
#include "store/sqlite_store.hpp"

namespace {

namespace fs = std::filesystem;
using namespace kestrel;
using Clock = std::chrono::steady_clock;
using search::ParamSpec;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// The same four parameters as the Optuna peer (bench/engine/optuna_peer.py).
engine::StudyOptions study_options() {
  engine::StudyOptions o;
  o.name = "bench";
  o.space = search::SearchSpace({ParamSpec::uniform("lr", 1e-5, 1e-1, true), ParamSpec::uniform("dropout", 0.0, 0.5),
                                 ParamSpec::integer("layers", 1, 8),
                                 ParamSpec::categorical("optimizer", {std::string("sgd"), std::string("adam"),
                                                                      std::string("adamw")})});
  o.tuner = "random";
  o.seed = 1;
  o.worker = "bench:1";
  // The heartbeat thread runs beside the trials, not on the ask/tell path; off so it cannot add noise here.
  o.heartbeat_interval = 0;
  return o;
}

double objective(engine::TrialHandle& t) { return t.get_double("dropout") + static_cast<double>(t.get_int("layers")); }

struct Stats {
  double mean, p50, p99;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  return {sum / static_cast<double>(v.size()), at(0.5), at(0.99)};
}

std::shared_ptr<store::Store> make_store(const std::string& kind, const fs::path& file) {
  if (kind == "memory") return std::make_shared<store::SqliteStore>(":memory:");
  fs::remove(file);
  fs::remove(file.string() + "-wal");
  fs::remove(file.string() + "-shm");
  return std::make_shared<store::SqliteStore>(file.string());
}

void fill(engine::Study& s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    auto t = s.ask();
    t.tell(objective(t));
  }
}

void overhead(const std::string& kind, int64_t stored, int64_t measure, const fs::path& dir) {
  fs::path file = dir / ("engine-" + std::to_string(stored) + ".db");
  auto st = make_store(kind, file);
  engine::Study s(st, study_options());
  auto t0 = Clock::now();
  fill(s, stored);
  double fill_ms = ms_since(t0);

  std::vector<double> per;
  per.reserve(measure);
  for (int64_t i = 0; i < measure; ++i) {
    auto t1 = Clock::now();
    auto t = s.ask();
    t.tell(objective(t));
    per.push_back(ms_since(t1));
  }
  Stats a = stats(per);

  // The same number of trials again through optimize() (runner bookkeeping, per-trial folder, one thread).
  engine::CallbackEvaluator ev([](engine::TrialHandle& t) { return std::vector<double>{objective(t)}; });
  engine::RunOptions ro;
  ro.n_trials = stored + 2 * measure;
  ro.runs_dir = (dir / "runs").string();
  auto t2 = Clock::now();
  auto sum = engine::optimize(s, ev, ro);
  double run_ms = ms_since(t2);
  std::printf(
      "{\"store\":\"%s\",\"stored\":%lld,\"measured\":%lld,\"fill_mean_ms\":%.4f,\"ask_tell_mean_ms\":%.4f,"
      "\"ask_tell_p50_ms\":%.4f,\"ask_tell_p99_ms\":%.4f,\"optimize_mean_ms\":%.4f,\"optimize_completed\":%lld}\n",
      kind.c_str(), static_cast<long long>(stored), static_cast<long long>(measure),
      fill_ms / static_cast<double>(std::max<int64_t>(stored, 1)), a.mean, a.p50, a.p99,
      run_ms / static_cast<double>(std::max<int64_t>(sum.completed, 1)), static_cast<long long>(sum.completed));
  std::fflush(stdout);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = fs::temp_directory_path() / "kestrel_engine_bench";
  std::vector<std::string> sizes = {"1000", "10000"}, stores = {"memory", "file"};
  int64_t measure = 1000, trials = 10000;
  std::string fill_file, resume_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") dir = next();
    else if (a == "--sizes") sizes = split(next());
    else if (a == "--measure") measure = std::stoll(next());
    else if (a == "--stores") stores = split(next());
    else if (a == "--fill") fill_file = next();
    else if (a == "--trials") trials = std::stoll(next());
    else if (a == "--resume") resume_file = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    if (!resume_file.empty()) {
      auto t0 = Clock::now();
      engine::Study s(std::make_shared<store::SqliteStore>(resume_file), study_options());
      double open_ms = ms_since(t0);
      auto t = s.ask();
      t.tell(objective(t));
      double total_ms = ms_since(t0);
      std::printf("{\"resume_trial_number\":%lld,\"open_load_ms\":%.3f,\"open_load_ask_tell_ms\":%.3f}\n",
                  static_cast<long long>(t.number()), open_ms, total_ms);
      return 0;
    }
    if (!fill_file.empty()) {
      auto st = make_store("file", fill_file);
      engine::Study s(st, study_options());
      fill(s, trials);
      std::printf("{\"filled\":%lld}\n", static_cast<long long>(trials));
      return 0;
    }
    fs::create_directories(dir);
    for (const auto& kind : stores)
      for (const auto& n : sizes) overhead(kind, std::stoll(n), measure, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
