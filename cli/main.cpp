// The `kestrel` executable: command-line parsing (CLI11) and the mapping of errors to documented exit codes.
// Subcommands live in cli/commands.cpp; docs/cli.md describes them.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "common/error.hpp"

using namespace kestrel;
using namespace kestrel::cli;

namespace {

void add_run_options(CLI::App* c, RunArgs& a, bool with_seed) {
  c->add_option("-j,--jobs", a.jobs, "trials in flight at once (overrides n_jobs)")->check(CLI::Range(1, 4096));
  c->add_option("--n-trials", a.n_trials, "trial budget of the study (overrides budget.n_trials)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--timeout", a.timeout_s, "wall-time budget of this run in seconds (overrides budget.timeout)")
      ->check(CLI::NonNegativeNumber);
  if (with_seed) c->add_option("--seed", a.seed, "tuner seed (overrides seed)");
  c->add_option("--runs-dir", a.runs_dir, "folder for per-trial files (overrides runs_dir)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kestrel: hyperparameter optimization from YAML sweep files (docs/cli.md)"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions g;
  app.add_option("--storage", g.storage, "store URL, e.g. sqlite:///abs/path.db (default: sqlite:///<cwd>/kestrel.db)");
  app.add_option("--study", g.study, "study name (default: the sweep's, or the only study in the store)");
  app.add_option("--busy-timeout", g.busy_timeout_s, "seconds to wait for a database locked by another program")
      ->check(CLI::NonNegativeNumber);

  RunArgs run_args, resume_args, worker_args;
  auto* run = app.add_subcommand("run", "start a new study from a sweep file and run it");
  run->add_option("sweep", run_args.sweep, "the sweep file (YAML)")->required();
  add_run_options(run, run_args, true);

  auto* resume = app.add_subcommand("resume", "continue a study (with its stored sweep when no file is given)");
  resume->add_option("sweep", resume_args.sweep, "the sweep file (optional)");
  add_run_options(resume, resume_args, false);

  auto* worker = app.add_subcommand("worker", "join (or start) a study and run trials alongside other workers");
  worker->add_option("sweep", worker_args.sweep, "the sweep file (YAML)")->required();
  add_run_options(worker, worker_args, true);

  auto* status = app.add_subcommand("status", "summary of a study: counts by state, best trial, budget");
  bool trials_json = false, best_json = false, list_json = false;
  auto* trials = app.add_subcommand("trials", "every trial of a study as a table");
  trials->add_flag("--json", trials_json, "print JSON instead of a table");
  auto* best = app.add_subcommand("best", "the best trial (the Pareto front with several objectives)");
  best->add_flag("--json", best_json, "print JSON");
  bool pareto_json = false;
  auto* pareto = app.add_subcommand("pareto", "the Pareto front of a multi-objective study (same as best)");
  pareto->add_flag("--json", pareto_json, "print JSON");
  auto* pbt = app.add_subcommand("pbt-schedule", "the hyperparameter schedule of the best PBT member");
  std::string format = "csv", output;
  auto* exp = app.add_subcommand("export", "every trial of a study as CSV or JSON");
  exp->add_option("--format", format, "csv or json")->check(CLI::IsMember({"csv", "json"}));
  exp->add_option("-o,--output", output, "file to write (default: standard output)");
  std::string validate_path;
  auto* validate = app.add_subcommand("validate", "check a sweep file without running anything");
  validate->add_option("sweep", validate_path, "the sweep file (YAML)")->required();
  auto* list = app.add_subcommand("list", "the studies in the store");
  list->add_flag("--json", list_json, "print JSON");

  TrainArgs train_args;
  auto* train = app.add_subcommand("train", "train one model from a training file (docs/model-file.md)");
  train->add_option("file", train_args.file, "the training file (YAML)")->required();
  train->add_option("--epochs", train_args.epochs, "override training.epochs")->check(CLI::PositiveNumber);
  train->add_option("--threads", train_args.threads, "override training.threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--seed", train_args.seed, "override training.seed");
  train->add_flag("--json", train_args.json, "print the history and final metrics as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (*run) return run_sweep(g, run_args, RunMode::Run);
    if (*resume) return run_sweep(g, resume_args, RunMode::Resume);
    if (*worker) return run_sweep(g, worker_args, RunMode::Worker);
    if (*status) return show_status(g);
    if (*trials) return show_trials(g, trials_json);
    if (*best) return show_best(g, best_json);
    if (*pareto) return show_best(g, pareto_json);
    if (*pbt) return show_pbt_schedule(g);
    if (*exp) return export_trials(g, format, output);
    if (*validate) return validate_sweep(validate_path);
    if (*list) return list_studies(g, list_json);
    if (*train) return train_model(train_args);
  } catch (const ConfigError& e) {
    std::cerr << "kestrel: error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const StoreError& e) {
    std::cerr << "kestrel: store error: " << e.what() << "\n";
    return kExitStore;
  } catch (const std::exception& e) {
    std::cerr << "kestrel: error: " << e.what() << "\n";
    return kExitRuntime;
  }
  return kExitUsage;
}
