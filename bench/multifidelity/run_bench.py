#!/usr/bin/env python3
# Multi-fidelity benchmark: Kestrel's ASHA, Hyperband, BOHB, ASHA and median pruners (C++ driver mf_bench) against Optuna's
# MedianPruner, SuccessiveHalvingPruner, HyperbandPruner, full-budget TPE and full-budget random search.
"""Usage (from the repository root):
  bench/multifidelity/run_bench.py --bin BUILD/bench/multifidelity/mf_bench      (CMake target mf_bench)
  bench/multifidelity/run_bench.py --build BUILD                                 (compiles mf_bench with g++ from
                                                                                  BUILD's libkestrel_tuners.a)
Runs 20 seeds per method and problem ("moderate" and "strong" crossing, see curves.hpp) at an equal budget of
BUDGET steps (default 810 = 1/3 of full-budget random search's 30 x 81 steps), plus full-budget random search at
3 x BUDGET, and prints a Markdown table: median steps used, median trials run, median and quartiles of the true
(noise-free, full-budget) final error of the trial each method picks. Optuna comes from bench/.venv (created and
filled with optuna>=5 by pip when missing); --optuna-raw FILE (repeatable) reuses stored optuna_peers.py lines instead
(bench/multifidelity/results/optuna-810-*.jsonl: 20 seeds at 810 steps; *-seeds20.jsonl: seeds 20-39, for
--first-seed 20). kestrel_bohb_original_rule is BOHB with
the rank validation off (min_rank_pairs 0, min_rank_agreement -1: the model on the largest budget with enough results).
kestrel_asha_rank_check is ASHA with its opt-in rank check of the low rungs (min_rank_pairs 10, min_rank_agreement
0.4). Pruner rows: kestrel_asha_pruner / kestrel_median_pruner sample at random, the *_tpe rows with Kestrel's TPE (default
settings), as Optuna's pruner rows sample with its TPESampler.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from bench_venv import VENV, VENV_PY, ensure_optuna as _ensure_optuna  # noqa: E402  (bench/bench_venv.py)


def ensure_optuna():
    return _ensure_optuna("optuna>=5,<6")


def build_with_gxx(build):
    out = os.path.join(build, "mf_bench")
    libs = [os.path.join(build, "tuners", "libkestrel_tuners.a"), os.path.join(build, "search", "libkestrel_search.a")]
    subprocess.check_call(["g++", "-std=c++20", "-O2", "-I", ROOT, "-isystem", "/usr/include/eigen3",
                           os.path.join(HERE, "mf_bench.cpp")] + libs + ["-o", out])
    return out


def lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def quartiles(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--build")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=810)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST_SEED .. FIRST_SEED + SEEDS - 1")
    ap.add_argument("--no-optuna", action="store_true")
    ap.add_argument("--json", help="also write every run as JSON lines here")
    ap.add_argument("--optuna-raw", action="append", default=[], help="stored optuna_peers.py output to reuse")
    ap.add_argument("--problems", default="moderate,strong", help="comma-separated: moderate, strong, none")
    a = ap.parse_args()
    problems = a.problems.split(",")
    binary = a.bin or (build_with_gxx(a.build) if a.build else None)
    if not binary:
        ap.error("give --bin or --build")
    stored = [json.loads(l) for f in a.optuna_raw for l in open(f) if l.strip()]
    version = None if a.no_optuna or stored else ensure_optuna()
    if stored:
        version = "(stored rows: %s)" % ", ".join(a.optuna_raw)
    rows = []
    for problem in problems:
        first = str(a.first_seed)
        runs = lines([binary, "random", str(3 * a.budget), str(a.seeds), problem, first])
        for r in runs:
            r["method"] = "kestrel_random_full_3x"
        for m in ("random", "asha", "hyperband", "bohb", "asha_pruner", "asha_pruner_tpe", "median_pruner",
                  "median_pruner_tpe"):
            runs += lines([binary, m, str(a.budget), str(a.seeds), problem, first])
        checked = lines([binary, "asha", str(a.budget), str(a.seeds), problem, first,
                         json.dumps({"min_rank_pairs": 10, "min_rank_agreement": 0.4})])
        for r in checked:
            r["method"] = "kestrel_asha_rank_check"
        runs += checked
        original = lines([binary, "bohb", str(a.budget), str(a.seeds), problem, first,
                          json.dumps({"min_rank_pairs": 0, "min_rank_agreement": -1})])
        for r in original:
            r["method"] = "kestrel_bohb_original_rule"
        runs += original
        if stored:
            runs += [r for r in stored if r["problem"] == problem and r["budget"] == a.budget
                     and a.first_seed <= r["seed"] < a.first_seed + a.seeds]
        elif version:
            out = subprocess.run([VENV_PY, os.path.join(HERE, "optuna_peers.py"), str(a.budget), str(a.seeds), problem, "",
                                  first],
                                 check=True, capture_output=True, text=True).stdout
            runs += [json.loads(l) for l in out.splitlines() if l.strip()]
        rows += runs
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print("Optuna %s; %d seeds; budget %d steps (random_full_3x: %d)" % (version, a.seeds, a.budget, 3 * a.budget))
    for problem in problems:
        print("\n**%s crossing**\n" % problem)
        print("| method | steps (median) | trials (median) | true final error: median | q1 | q3 |")
        print("|---|---:|---:|---:|---:|---:|")
        methods = []
        for r in rows:
            if r["problem"] == problem and r["method"] not in methods:
                methods.append(r["method"])
        for m in methods:
            rs = [r for r in rows if r["problem"] == problem and r["method"] == m]
            errs = [r["true_final_error"] for r in rs if r["true_final_error"] is not None]
            q1, med, q3 = quartiles(errs)
            print("| %s | %d | %d | %.4f | %.4f | %.4f |" % (m, statistics.median(r["steps"] for r in rs),
                                                          statistics.median(r["trials"] for r in rs), med, q1, q3))


if __name__ == "__main__":
    main()
