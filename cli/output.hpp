// Trial reports for the `kestrel` command: the trials table, JSON and CSV exports, the best-trial summary,
// and small formatting helpers (numbers, durations) shared by the progress display.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "search/trial.hpp"
#include "store/store.hpp"

namespace kestrel::cli {

using search::Objective;
using search::Trial;

// "0.397887", "1.2e-05": 6 significant digits for people; exports keep full precision.
std::string short_number(double x);
// "0.42 s", "3:07", "1:02:03" (h:mm:ss past an hour).
std::string short_duration(double seconds);
// "x1=3.14159 x2=2.275" (parameters in name order).
std::string params_inline(const search::Config& c);
// "value=0.397887" or "loss=0.31 acc=0.9"; empty when the trial has no values.
std::string values_inline(const Trial& t, const std::vector<Objective>& objectives);

// Names of every parameter that appears in any trial, in name order.
std::vector<std::string> param_names(const std::vector<Trial>& trials);

// The trials table: number, state, one column per objective, one per parameter, duration, reason.
void print_table(std::ostream& os, const std::vector<Trial>& trials, const std::vector<Objective>& objectives);

// One trial as JSON. `full` adds intermediate reports and attributes (export), else they are left out (trials --json).
nlohmann::json trial_json(const Trial& t, const std::vector<Objective>& objectives, bool full);

// CSV with a header row: number,state,<objectives>,params.<name>...,duration_s,start,end,worker,reason.
// Full precision; fields with commas, quotes or newlines are quoted (RFC 4180).
void write_csv(std::ostream& os, const std::vector<Trial>& trials, const std::vector<Objective>& objectives);

}  // namespace kestrel::cli
