// tuner_bench: runs one Kestrel tuner on one benchmark function for several seeds with an in-memory ask/tell loop
// and prints one JSON line per seed (best regret after each budget, ask times at given history sizes: the median
// of the 10 asks starting there, so --trials must exceed the largest --ask-at by 10).
// Usage: tuner_bench --tuner KIND [--params JSON] --function NAME [--trials N] [--seeds S] [--first-seed K]
//                    [--budgets 50,200] [--ask-at 100,500,1000] [--prefill]
// With --prefill, each --ask-at size N is measured on a fresh history of N random trials (seeded, evaluated on the
// function) instead of inside the run, so large sizes cost no optimization time; regret is then not reported.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/tuners/functions.hpp"
#include "tuners/tuner.hpp"

namespace {

constexpr int64_t kAskWindow = 10;

// CPU time of the whole process (every thread), so that a sampler using several threads is charged for all of
// them; on a loaded machine it is the figure that does not depend on what else runs.
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

std::vector<int64_t> int_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kestrel;
  std::string kind = "random", fname = "branin";
  nlohmann::json params = nlohmann::json::object();
  int64_t trials = 200, seeds = 15, first_seed = 0;
  std::vector<int64_t> budgets = {50, 200}, ask_at;
  bool prefill = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--tuner") kind = v;
    else if (k == "--params") params = nlohmann::json::parse(v);
    else if (k == "--function") fname = v;
    else if (k == "--trials") trials = std::stoll(v);
    else if (k == "--seeds") seeds = std::stoll(v);
    else if (k == "--first-seed") first_seed = std::stoll(v);
    else if (k == "--budgets") budgets = int_list(v);
    else if (k == "--ask-at") ask_at = int_list(v);
    else if (k == "--prefill") prefill = v == "1" || v == "true";
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  try {
    auto fn = bench::bench_function(fname);
    if (prefill) {
      for (int64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
        nlohmann::json ask_ms = nlohmann::json::object(), ask_cpu_ms = nlohmann::json::object();
        for (int64_t a : ask_at) {
          std::deque<search::Trial> store;
          tuners::History h;
          h.space = &fn.space;
          h.objectives = {search::Objective{"value", search::Direction::Minimize}};
          auto filler = tuners::make_tuner("random", {}, static_cast<uint64_t>(seed) + 1000);
          auto tuner = tuners::make_tuner(kind, params, static_cast<uint64_t>(seed));
          std::vector<double> times, cpu_times;
          for (int64_t n = 0; n < a + kAskWindow; ++n) {
            bool timed = n >= a;
            auto t0 = std::chrono::steady_clock::now();
            double c0 = process_cpu_ms();
            auto p = (timed ? tuner : filler)->ask(h, n);
            if (timed) {
              times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
              cpu_times.push_back(process_cpu_ms() - c0);
            }
            search::Trial t;
            t.number = t.id = n;
            t.config = std::move(p.config);
            t.attrs = std::move(p.attrs);
            t.state = search::TrialState::Complete;
            t.values = {fn.f(t.config)};
            store.push_back(std::move(t));
            h.trials.push_back(&store.back());
          }
          std::sort(times.begin(), times.end());
          std::sort(cpu_times.begin(), cpu_times.end());
          ask_ms[std::to_string(a)] = (times[kAskWindow / 2 - 1] + times[kAskWindow / 2]) / 2;
          ask_cpu_ms[std::to_string(a)] = (cpu_times[kAskWindow / 2 - 1] + cpu_times[kAskWindow / 2]) / 2;
        }
        nlohmann::json line = {{"impl", "kestrel"}, {"tuner", kind},       {"params", params},
                               {"function", fname}, {"seed", seed},        {"mode", "prefill"},
                               {"ask_ms", ask_ms},  {"ask_cpu_ms", ask_cpu_ms}};
        std::cout << line.dump() << std::endl;
      }
      return 0;
    }
    for (int64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
      auto tuner = tuners::make_tuner(kind, params, static_cast<uint64_t>(seed));
      std::deque<search::Trial> store;
      tuners::History h;
      h.space = &fn.space;
      h.objectives = {search::Objective{"value", search::Direction::Minimize}};
      double best = 1e300;
      nlohmann::json best_at = nlohmann::json::object(), ask_ms = nlohmann::json::object();
      double total_ask = 0;
      std::map<int64_t, std::vector<double>> windows;
      for (int64_t n = 0; n < trials; ++n) {
        auto t0 = std::chrono::steady_clock::now();
        auto p = tuner->ask(h, n);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        total_ask += ms;
        // Ask time at history size a: the median of the asks for trials a .. a+kAskWindow-1 (single asks are
        // noisy on a shared machine).
        for (int64_t a : ask_at)
          if (n >= a && n < a + kAskWindow) {
            auto& w = windows[a];
            w.push_back(ms);
            if (static_cast<int64_t>(w.size()) == kAskWindow) {
              std::sort(w.begin(), w.end());
              ask_ms[std::to_string(a)] = (w[kAskWindow / 2 - 1] + w[kAskWindow / 2]) / 2;
            }
          }
        search::Trial t;
        t.number = t.id = n;
        t.config = std::move(p.config);
        t.attrs = std::move(p.attrs);
        double v = fn.f(t.config);
        t.state = search::TrialState::Complete;
        t.values = {v};
        store.push_back(std::move(t));
        h.trials.push_back(&store.back());
        best = std::min(best, v);
        for (int64_t b : budgets)
          if (b == n + 1) best_at[std::to_string(b)] = best - fn.optimum;
      }
      nlohmann::json line = {{"impl", "kestrel"},      {"tuner", kind},  {"params", params},
                             {"function", fname},      {"seed", seed},   {"trials", trials},
                             {"regret", best_at},      {"ask_ms", ask_ms}, {"mean_ask_ms", total_ask / trials}};
      std::cout << line.dump() << std::endl;
    }
  } catch (const std::exception& e) {
    std::cerr << "tuner_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
