// gp_regret: in-process quality and overhead check of the GP tuner against Kestrel's random search: simple regret
// on Branin, Hartmann-6, Rosenbrock-5 and a mixed space (15 seeds, 50 and 200 trials), and ask time vs history size.
//
// Usage: gp_regret [--seeds N] [--budget B] [--only NAME] [--timing-only] [--no-timing] [--run-timing] [--per-seed]
//                  [--params JSON]
// Prints Markdown tables (median [q1, q3] of simple regret; ask time in ms) for bench/RESULTS.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "search/space.hpp"
#include "search/trial.hpp"
#include "tuners/gp.hpp"
#include "tuners/random.hpp"
#include "tuners/support.hpp"

using namespace kestrel;
using search::Config;
using search::ParamSpec;
using search::SearchSpace;
using search::Trial;
using search::TrialState;
using search::Value;

namespace {

struct Problem {
  std::string name;
  SearchSpace space;
  double f_star;
  std::function<double(const Config&)> f;
};

double num(const Config& c, const std::string& k) { return search::as_double(c.at(k)); }

Problem branin() {
  return {"branin", SearchSpace({ParamSpec::uniform("x1", -5, 10), ParamSpec::uniform("x2", 0, 15)}), 0.397887,
          [](const Config& c) {
            double x1 = num(c, "x1"), x2 = num(c, "x2");
            const double b = 5.1 / (4 * M_PI * M_PI), cc = 5 / M_PI, t = 1 / (8 * M_PI);
            return std::pow(x2 - b * x1 * x1 + cc * x1 - 6, 2) + 10 * (1 - t) * std::cos(x1) + 10;
          }};
}

Problem hartmann6() {
  std::vector<ParamSpec> ps;
  for (int i = 0; i < 6; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), 0, 1));
  return {"hartmann6", SearchSpace(ps), -3.32237, [](const Config& c) {
            static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                           {0.05, 10, 17, 0.1, 8, 14},
                                           {3, 3.5, 1.7, 10, 17, 8},
                                           {17, 8, 0.05, 10, 0.1, 14}};
            static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                           {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                           {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                           {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
            static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
            double s = 0;
            for (int i = 0; i < 4; ++i) {
              double e = 0;
              for (int j = 0; j < 6; ++j) {
                double x = num(c, "x" + std::to_string(j));
                e += A[i][j] * (x - P[i][j]) * (x - P[i][j]);
              }
              s += alpha[i] * std::exp(-e);
            }
            return -s;
          }};
}

Problem rosenbrock5() {
  std::vector<ParamSpec> ps;
  for (int i = 0; i < 5; ++i) ps.push_back(ParamSpec::uniform("x" + std::to_string(i), -5, 10));
  return {"rosenbrock5", SearchSpace(ps), 0.0, [](const Config& c) {
            double s = 0;
            for (int i = 0; i < 4; ++i) {
              double a = num(c, "x" + std::to_string(i)), b = num(c, "x" + std::to_string(i + 1));
              s += 100 * (b - a * a) * (b - a * a) + (1 - a) * (1 - a);
            }
            return s;
          }};
}

// Mixed: a log-scale float (optimum 1e-2), an int (optimum 7 of 1..20), a categorical (optimum "b") and a float;
// the optimum value is 0 at (lr = 0.01, n = 7, kind = b, x = 0.3).
Problem mixed() {
  return {"mixed",
          SearchSpace({ParamSpec::uniform("lr", 1e-5, 1.0, true), ParamSpec::integer("n", 1, 20),
                       ParamSpec::categorical("kind", {Value{std::string("a")}, Value{std::string("b")},
                                                       Value{std::string("c")}}),
                       ParamSpec::uniform("x", 0, 1)}),
          0.0, [](const Config& c) {
            double l = std::log10(num(c, "lr")) + 2;
            double n = num(c, "n") - 7;
            const std::string& k = std::get<std::string>(c.at("kind"));
            double kc = k == "b" ? 0.0 : k == "a" ? 1.0 : 0.5;
            double x = num(c, "x") - 0.3;
            return l * l + 0.05 * n * n + kc + 4 * x * x;
          }};
}

struct Run {
  std::vector<double> best_at;  // best regret after each trial
  std::vector<double> ask_cpu_ms;  // thread CPU time of each ask
};

// CPU time of this thread: on a shared machine wall time also counts other people's processes.
double thread_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

Run run(const Problem& p, tuners::Tuner& t, int budget) {
  std::vector<std::unique_ptr<Trial>> trials;
  Run r;
  double best = INFINITY;
  for (int i = 0; i < budget; ++i) {
    tuners::History h;
    h.space = &p.space;
    h.objectives = {search::Objective{}};
    for (auto& tr : trials) h.trials.push_back(tr.get());
    double c0 = thread_cpu_ms();
    auto prop = t.ask(h, i);
    r.ask_cpu_ms.push_back(thread_cpu_ms() - c0);
    auto tr = std::make_unique<Trial>();
    tr->number = i;
    tr->state = TrialState::Complete;
    tr->config = prop.config;
    tr->values = {p.f(prop.config)};
    best = std::min(best, tr->values[0] - p.f_star);
    r.best_at.push_back(std::max(best, 0.0));
    trials.push_back(std::move(tr));
  }
  return r;
}

struct Quart {
  double q1, med, q3;
};
Quart quartiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    double pos = q * (v.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(v.size() - 1, lo + 1);
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
  };
  return {at(0.25), at(0.5), at(0.75)};
}

// Median wall and thread-CPU milliseconds of one ask on a history of n_done random COMPLETE trials.
std::pair<double, double> ask_ms(const Problem& p, int n_done, const nlohmann::json& params, int reps) {
  std::vector<std::unique_ptr<Trial>> trials;
  tuners::Rng rng(12345);
  for (int i = 0; i < n_done; ++i) {
    auto tr = std::make_unique<Trial>();
    tr->number = i;
    tr->state = TrialState::Complete;
    tr->config = tuners::sample_uniform(p.space, rng);
    tr->values = {p.f(tr->config)};
    trials.push_back(std::move(tr));
  }
  tuners::History h;
  h.space = &p.space;
  h.objectives = {search::Objective{}};
  for (auto& tr : trials) h.trials.push_back(tr.get());
  std::vector<double> wall, cpu;
  for (int r = 0; r < reps; ++r) {
    auto t = tuners::make_gp_tuner(params, 7);
    auto t0 = std::chrono::steady_clock::now();
    double c0 = thread_cpu_ms();
    t->ask(h, n_done + r);
    cpu.push_back(thread_cpu_ms() - c0);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return {quartiles(wall).med, quartiles(cpu).med};
}

}  // namespace

int main(int argc, char** argv) {
  int seeds = 15, budget = 200;
  bool timing = true, quality = true, run_timing = false, per_seed = false;
  std::string only;
  nlohmann::json params = nlohmann::json::object();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seeds" && i + 1 < argc) seeds = std::atoi(argv[++i]);
    else if (a == "--budget" && i + 1 < argc) budget = std::atoi(argv[++i]);
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--timing-only") quality = false;
    else if (a == "--no-timing") timing = false;
    else if (a == "--run-timing") run_timing = true;
    else if (a == "--per-seed") per_seed = true;
    else if (a == "--params" && i + 1 < argc) params = nlohmann::json::parse(argv[++i]);
    else {
      std::fprintf(stderr, "usage: gp_regret [--seeds N] [--budget B] [--only NAME] [--timing-only] [--no-timing] [--params JSON]\n");
      return 2;
    }
  }
  std::vector<Problem> problems = {branin(), hartmann6(), rosenbrock5(), mixed()};
  if (quality) {
    std::vector<int> checkpoints;
    for (int b : {50, 200})
      if (b <= budget) checkpoints.push_back(b);
    if (checkpoints.empty() || checkpoints.back() != budget) checkpoints.push_back(budget);
    std::printf("| function | tuner | trials | median regret | q1 | q3 |\n|---|---|---|---|---|---|\n");
    for (const auto& p : problems) {
      if (!only.empty() && p.name != only) continue;
      for (std::string kind : {"gp", "random"}) {
        std::vector<std::vector<double>> at(checkpoints.size());
        for (int s = 1; s <= seeds; ++s) {
          auto t = kind == "gp" ? tuners::make_gp_tuner(params, s) : tuners::make_random_tuner({}, s);
          Run r = run(p, *t, budget);
          for (size_t c = 0; c < checkpoints.size(); ++c) at[c].push_back(r.best_at[checkpoints[c] - 1]);
          if (per_seed)
            std::printf("per-seed %s %s seed %d: regret %.3g after %d trials\n", p.name.c_str(), kind.c_str(), s,
                        r.best_at.back(), budget);
          if (run_timing && kind == "gp")
            for (int from : {100, 200, 500, 1000})
              if (from + 10 <= budget) {
                std::vector<double> v(r.ask_cpu_ms.begin() + from, r.ask_cpu_ms.begin() + from + 10);
                std::printf("in-run ask CPU ms, %s seed %d, asks %d..%d: median %.1f max %.1f\n", p.name.c_str(), s,
                            from, from + 9, quartiles(v).med, *std::max_element(v.begin(), v.end()));
              }
        }
        for (size_t c = 0; c < checkpoints.size(); ++c) {
          Quart q = quartiles(at[c]);
          std::printf("| %s | %s | %d | %.3g | %.3g | %.3g |\n", p.name.c_str(), kind.c_str(), checkpoints[c], q.med,
                      q.q1, q.q3);
          std::fflush(stdout);
        }
      }
    }
  }
  if (timing) {
    std::printf("\n| function | finished trials | GP ask wall ms (median of 5) | GP ask thread-CPU ms |\n|---|---|---|---|\n");
    for (const auto& p : problems) {
      if (!only.empty() && p.name != only) continue;
      for (int n : {100, 200, 500, 1000}) {
        auto [wall, cpu] = ask_ms(p, n, params, 5);
        std::printf("| %s | %d | %.1f | %.1f |\n", p.name.c_str(), n, wall, cpu);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
