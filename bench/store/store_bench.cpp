// store_bench: raw SqliteStore figures: create_trial + finish per trial at 1k and 10k stored trials, trials() load
// time of a 10k-trial study, and (with --resume FILE) a whole-process "open + load every trial" for `time`.
//
// Usage: kestrel_bench_store [--dir DIR] [--sizes 1000,10000] [--measure 500] [--keep]
//        [--checkpoint-pages P] [--inline-checkpoint]
//        kestrel_bench_store --resume FILE.db [--study NAME]   (prints the count; time the whole process outside)
// Plain std::chrono timing (not Google Benchmark): the figures are wanted at given stored sizes, and Debian's
// libbenchmark is a debug build.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "store/sqlite_store.hpp"

namespace {

using kestrel::search::Config;
using kestrel::search::TrialState;
using kestrel::search::Value;
using kestrel::store::SqliteStore;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A typical configuration: four parameters of the common kinds.
Config make_config(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  static const char* kOpts[] = {"sgd", "adam", "adamw"};
  return Config{{"lr", Value(std::pow(10.0, -5.0 + 4.0 * u(rng)))},
                {"dropout", Value(0.5 * u(rng))},
                {"layers", Value(static_cast<int64_t>(1 + rng() % 8))},
                {"optimizer", Value(std::string(kOpts[rng() % 3]))}};
}

struct Stats {
  double mean_ms, p50_ms, p99_ms, max_ms;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  return Stats{sum / static_cast<double>(v.size()), at(0.5), at(0.99), v.back()};
}

// One finished trial the way the engine stores it: created RUNNING, one report, finished COMPLETE.
void one_trial(SqliteStore& s, int64_t study, std::mt19937_64& rng, bool with_report) {
  auto t = s.create_trial(study, make_config(rng), TrialState::Running, "bench:1");
  if (with_report) s.report(t.id, 0, {{"loss", 0.5}});
  s.finish(t.id, TrialState::Complete, {static_cast<double>(t.number)});
}

int run_resume(const std::string& file, const std::string& study) {
  auto t0 = Clock::now();
  SqliteStore s(file);
  auto info = s.find_study(study);
  if (!info) {
    std::fprintf(stderr, "no study '%s' in %s\n", study.c_str(), file.c_str());
    return 1;
  }
  auto trials = s.trials(info->id);
  std::printf("resume: loaded %zu trials in %.1f ms (in-process: open + find_study + trials())\n", trials.size(),
              ms_since(t0));
  return 0;
}

}  // namespace

static int run(int argc, char** argv) {
  std::string dir, resume_file, study = "bench";
  std::vector<int> sizes = {1000, 10000};
  int measure = 500;
  bool keep = false;
  kestrel::store::SqliteStoreOptions opts;
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
    else if (a == "--measure") measure = std::stoi(next());
    else if (a == "--keep") keep = true;
    else if (a == "--checkpoint-pages") opts.checkpoint_pages = std::stoi(next());
    else if (a == "--inline-checkpoint") opts.background_checkpoint = false;
    else if (a == "--resume") resume_file = next();
    else if (a == "--study") study = next();
    else if (a == "--sizes") {
      sizes.clear();
      std::stringstream ss(next());
      for (std::string x; std::getline(ss, x, ',');) sizes.push_back(std::stoi(x));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--dir DIR] [--sizes 1000,10000] [--measure N] [--checkpoint-pages P] "
                   "[--inline-checkpoint] [--keep] | --resume FILE.db\n",
                   argv[0]);
      return 2;
    }
  }
  if (!resume_file.empty()) return run_resume(resume_file, study);

  namespace fs = std::filesystem;
  bool own_dir = dir.empty();
  if (!own_dir) {
    fs::create_directories(dir);
  } else {
    std::string tmpl = (fs::temp_directory_path() / "kestrel-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return 1;
    dir = tmpl;
  }
  std::mt19937_64 rng(7);
  std::printf("SqliteStore raw figures (file in %s; WAL, synchronous=NORMAL, %s checkpoints every %d pages), "
              "%d measured trials per size\n\n",
              dir.c_str(), opts.background_checkpoint ? "background" : "inline", opts.checkpoint_pages, measure);
  std::printf("| stored trials | store | create+finish mean ms | p50 | p99 | max | "
              "engine-like (+report +trials_changed_since) mean ms | p50 |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (int n : sizes) {
    for (bool memory : {false, true}) {
      std::string file = memory ? ":memory:" : dir + "/bench-" + std::to_string(n) + ".db";
      if (!memory) fs::remove(file);
      SqliteStore s(file, opts);
      int64_t study = s.create_study("bench", {{"loss", kestrel::search::Direction::Minimize}}, "{}").id;
      for (int i = 0; i < n; ++i) one_trial(s, study, rng, true);
      // Bare store cost: create_trial + finish.
      std::vector<double> bare;
      for (int i = 0; i < measure; ++i) {
        auto t0 = Clock::now();
        one_trial(s, study, rng, false);
        bare.push_back(ms_since(t0));
      }
      // What an engine does per trial: create, one report, finish, and refresh its cache incrementally.
      int64_t cursor = 0;
      (void)s.trials_changed_since(study, cursor);
      std::vector<double> engine_like;
      for (int i = 0; i < measure; ++i) {
        auto t0 = Clock::now();
        one_trial(s, study, rng, true);
        (void)s.trials_changed_since(study, cursor);
        engine_like.push_back(ms_since(t0));
      }
      Stats b = stats(bare), e = stats(engine_like);
      std::printf("| %d | %s | %.3f | %.3f | %.3f | %.1f | %.3f | %.3f |\n", n, memory ? "memory" : "file",
                  b.mean_ms, b.p50_ms, b.p99_ms, b.max_ms, e.mean_ms, e.p50_ms);
      std::fflush(stdout);
    }
  }

  // trials() load time of the largest study, on a fresh store object (new connection, cold statement cache).
  int n = sizes.back();
  std::string file = dir + "/bench-" + std::to_string(n) + ".db";
  std::vector<double> loads;
  size_t count = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    SqliteStore s(file);
    auto info = s.find_study("bench");
    count = s.trials(info->id).size();
    loads.push_back(ms_since(t0));
  }
  Stats l = stats(loads);
  std::printf("\nopen + trials() of %zu stored trials (each with 4 params, 1 value, 1 report): median %.1f ms, "
              "mean %.1f ms over 5 runs\n",
              count, l.p50_ms, l.mean_ms);
  if (!keep && own_dir) fs::remove_all(dir);
  else std::printf("kept %s (resume with: %s --resume %s)\n", dir.c_str(), argv[0], file.c_str());
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kestrel_bench_store: %s\n", e.what());
    return 1;
  }
}
