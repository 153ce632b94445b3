// The `kestrel` subcommands (run, resume, worker, status, trials, best, export, validate, list, train) and exit codes.
// main.cpp parses the command line into these structs; each function returns the process exit code.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace kestrel::cli {

// Documented in docs/cli.md.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;      // a runtime error, or the sweep stopped on budget.max_failed
inline constexpr int kExitUsage = 2;        // bad command line, sweep file or study selection
inline constexpr int kExitStore = 3;        // the database could not be opened, read or written
inline constexpr int kExitInterrupted = 130;

struct GlobalOptions {
  std::string storage;         // empty: the sweep's storage, else sqlite:///<cwd>/kestrel.db
  std::string study;           // empty: the sweep's study, else the only study in the store
  double busy_timeout_s = 60;  // longest wait for a database locked by another program
};

enum class RunMode { Run, Resume, Worker };

struct RunArgs {
  std::string sweep;                  // the sweep file (optional for resume)
  std::optional<int> jobs;
  std::optional<int64_t> n_trials;
  std::optional<double> timeout_s;
  std::optional<uint64_t> seed;
  std::optional<std::string> runs_dir;
};

struct TrainArgs {
  std::string file;                   // the training file (docs/model-file.md)
  std::optional<int> epochs, threads;
  std::optional<uint64_t> seed;
  bool json = false;
};

// Set by SIGINT/SIGTERM while a sweep runs; the runner stops asking and stops the running trials.
extern std::atomic<bool> g_stop_requested;

int run_sweep(const GlobalOptions& g, const RunArgs& a, RunMode mode);
int show_status(const GlobalOptions& g);
int show_trials(const GlobalOptions& g, bool json);
int show_best(const GlobalOptions& g, bool json);
// The hyperparameter schedule of the best PBT member (its lineage, segment by segment).
int show_pbt_schedule(const GlobalOptions& g);
int export_trials(const GlobalOptions& g, const std::string& format, const std::string& output);
int validate_sweep(const std::string& path);
int list_studies(const GlobalOptions& g, bool json);
int train_model(const TrainArgs& a);  // cli/train.cpp

// The default store URL: sqlite:///<cwd>/kestrel.db.
std::string default_storage();

}  // namespace kestrel::cli
