#!/usr/bin/env python3
# Side-by-side tuner benchmark: Kestrel's tuners (through the C++ driver tuner_bench) and Optuna's samplers (newest
# 5.x from PyPI, in bench/.venv) on the same functions, seeds and budgets; prints and writes the summary tables.
"""Tuner quality and overhead benchmark, Kestrel versus Optuna.

Usage (from the repository root):
  bench/tuners/run_bench.py --bin BUILD/bench/tuners/tuner_bench [options]

Regret: each (tuner, function, seed) runs max(budgets) trials sequentially in memory; the simple regret after b
trials is (best value among the first b) - (known optimum). The tables give the median and the quartiles over the
seeds. Ask time: the median of 10 consecutive asks (3 for GP samplers) on a history of N finished trials. For
random/TPE/GP the history is N random trials added up front (same method on both sides, so large N costs no
optimization time); CMA-ES ignores foreign trials, so for it N is reached by a real run (--cma-ask-run).

Kestrel tuners are given as NAME=KIND[:JSON params], e.g. "tpe=tpe", "tpe_indep=tpe:{\"multivariate\":false}",
"gp=gp". Optuna samplers: random, tpe, tpe_mv (multivariate=True), cmaes, gp (GPSampler).
The script creates bench/.venv and installs optuna>=5,<6, cmaes, scipy, torch and greenlet (GPSampler needs the
last three; without greenlet it falls back to a slower sequential L-BFGS-B) with pip when they are missing;
--no-optuna skips that side.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv")
VENV_PY = os.path.join(VENV, "bin", "python")
FUNCTIONS = ["branin", "hartmann6", "rosenbrock5", "mixed"]
OPTIMA = {"branin": 0.397887357729738, "hartmann6": -3.32236801141551, "rosenbrock5": 0.0, "mixed": 0.0}
ASK_WINDOW = 10

# ---------------------------------------------------------------------------------------------------------------
# The benchmark functions, mirrored from functions.hpp (keep the two in step).


def f_branin(p):
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_HA = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_HP = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
       [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_HALPHA = [1.0, 1.2, 3.0, 3.2]


def f_hartmann6(p):
    x = [p["x%d" % j] for j in range(6)]
    return -sum(_HALPHA[i] * math.exp(-sum(_HA[i][j] * (x[j] - _HP[i][j]) ** 2 for j in range(6))) for i in range(4))


def f_rosenbrock5(p):
    x = [p["x%d" % j] for j in range(5)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4))


def f_mixed(p):
    k = p["kind"]
    shift = {"a": 1.0, "b": 0.0, "c": -1.0}[k]
    pen = {"a": 0.3, "b": 0.0, "c": 0.6}[k]
    l = math.log10(p["lr"]) + 2.5 + shift * 0.5 * (k != "b")
    return l * l + 0.02 * (p["n"] - 7.0) ** 2 + pen + 0.5 * (p["x"] - 0.3) ** 2


def suggest(trial, fname):
    """Asks an Optuna trial for the function's parameters (the same spaces as functions.hpp)."""
    if fname == "branin":
        return {"x1": trial.suggest_float("x1", -5, 10), "x2": trial.suggest_float("x2", 0, 15)}
    if fname == "hartmann6":
        return {"x%d" % j: trial.suggest_float("x%d" % j, 0, 1) for j in range(6)}
    if fname == "rosenbrock5":
        return {"x%d" % j: trial.suggest_float("x%d" % j, -5, 10) for j in range(5)}
    return {"lr": trial.suggest_float("lr", 1e-5, 1.0, log=True), "n": trial.suggest_int("n", 1, 32),
            "kind": trial.suggest_categorical("kind", ["a", "b", "c"]), "x": trial.suggest_float("x", -2, 2)}


FUNCS = {"branin": f_branin, "hartmann6": f_hartmann6, "rosenbrock5": f_rosenbrock5, "mixed": f_mixed}

# ---------------------------------------------------------------------------------------------------------------
# Optuna side (runs inside the venv's interpreter).


def make_sampler(name, seed):
    import optuna
    s = optuna.samplers
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "tpe_mv":
        return s.TPESampler(seed=seed, multivariate=True)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed)
    if name == "gp":
        return s.GPSampler(seed=seed)
    raise ValueError("unknown Optuna sampler " + name)


def optuna_regret(job):
    import warnings
    import optuna
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name, fname, seed, budgets = job
    study = optuna.create_study(sampler=make_sampler(name, seed))
    best, out, asks = float("inf"), {}, []
    for n in range(max(budgets)):
        t0 = time.perf_counter()
        trial = study.ask()
        params = suggest(trial, fname)
        asks.append(time.perf_counter() - t0)
        v = FUNCS[fname](params)
        study.tell(trial, v)
        best = min(best, v)
        if n + 1 in budgets:
            out[str(n + 1)] = best - OPTIMA[fname]
    return {"impl": "optuna", "tuner": name, "function": fname, "seed": seed, "regret": out,
            "mean_ask_ms": 1000 * sum(asks) / len(asks)}


def optuna_ask_time(job):
    """Median ask time on a history of n random finished trials (or inside a real run for CMA-ES)."""
    import random as pyrandom
    import warnings
    import optuna
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    name, fname, seed, sizes, real_run = job
    window = 3 if name == "gp" else ASK_WINDOW
    res, res_cpu = {}, {}
    if real_run:
        study = optuna.create_study(sampler=make_sampler(name, seed))
        times = {}
        for n in range(max(sizes) + window):
            t0 = time.perf_counter()
            trial = study.ask()
            params = suggest(trial, fname)
            dt = time.perf_counter() - t0
            for a in sizes:
                if a <= n < a + window:
                    times.setdefault(a, []).append(dt)
            study.tell(trial, FUNCS[fname](params))
        res = {str(a): 1000 * statistics.median(t) for a, t in times.items()}
    else:
        for a in sizes:
            study = optuna.create_study(sampler=make_sampler(name, seed))
            filler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + 1000))
            trials = []
            for _ in range(a):
                t = filler.ask()
                p = suggest(t, fname)
                v = FUNCS[fname](p)
                filler.tell(t, v)
            trials = filler.get_trials(deepcopy=False)
            study.add_trials(trials)
            times, cpu = [], []
            for _ in range(window):
                t0, c0 = time.perf_counter(), time.process_time()
                trial = study.ask()
                params = suggest(trial, fname)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)  # every thread of the process (torch may use several)
                study.tell(trial, FUNCS[fname](params))
            res[str(a)] = 1000 * statistics.median(times)
            res_cpu[str(a)] = 1000 * statistics.median(cpu)
    return {"impl": "optuna", "tuner": name, "function": fname, "seed": seed, "ask_ms": res,
            "ask_cpu_ms": res_cpu, "mode": "run" if real_run else "prefill"}


def optuna_worker(args):
    """Entry point under the venv: runs the jobs given as JSON on stdin, one JSON line per result."""
    jobs = json.load(sys.stdin)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = []
        for j in jobs:
            if j["kind"] == "regret":
                futs.append(pool.submit(optuna_regret, (j["tuner"], j["function"], j["seed"], j["budgets"])))
            else:
                futs.append(pool.submit(optuna_ask_time, (j["tuner"], j["function"], j["seed"], j["sizes"],
                                                          j["real_run"])))
        for f in futs:
            print(json.dumps(f.result()), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Driver.


def ensure_venv(log):
    need = "import optuna, cmaes, scipy, torch, greenlet; assert int(optuna.__version__.split('.')[0]) >= 5"
    if os.path.exists(VENV_PY) and subprocess.run([VENV_PY, "-c", need], capture_output=True).returncode == 0:
        return True
    print("installing Optuna 5.x, cmaes, scipy, torch into %s (log: %s)" % (VENV, log), flush=True)
    with open(log, "a") as lf:
        if not os.path.exists(VENV_PY):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=lf, stderr=lf)
        r = subprocess.run([VENV_PY, "-m", "pip", "install", "optuna>=5,<6", "cmaes", "scipy", "torch", "numpy",
                            "greenlet"],
                           stdout=lf, stderr=lf)
    return r.returncode == 0 and subprocess.run([VENV_PY, "-c", need], capture_output=True).returncode == 0


def run_kestrel(binary, name, kind, params, fname, seeds, budgets, jobs):
    """Regret runs of one Kestrel tuner on one function, the seeds split over `jobs` processes."""
    per = max(1, math.ceil(seeds / jobs))
    procs = []
    for first in range(0, seeds, per):
        cmd = [binary, "--tuner", kind, "--params", json.dumps(params), "--function", fname,
               "--trials", str(max(budgets)), "--seeds", str(min(per, seeds - first)), "--first-seed", str(first),
               "--budgets", ",".join(map(str, budgets))]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError("tuner_bench failed for %s on %s" % (name, fname))
        for line in stdout.splitlines():
            d = json.loads(line)
            d["tuner"] = name
            out.append(d)
    return out


def kestrel_ask(binary, name, kind, params, fname, sizes, real_run):
    if real_run:
        cmd = [binary, "--tuner", kind, "--params", json.dumps(params), "--function", fname, "--seeds", "1",
               "--trials", str(max(sizes) + ASK_WINDOW), "--budgets", str(max(sizes)), "--ask-at",
               ",".join(map(str, sizes))]
    else:
        cmd = [binary, "--tuner", kind, "--params", json.dumps(params), "--function", fname, "--seeds", "1",
               "--ask-at", ",".join(map(str, sizes)), "--prefill", "1"]
    d = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[0])
    d["tuner"] = name
    d["mode"] = "run" if real_run else "prefill"
    return d


def quartiles(xs):
    xs = sorted(xs)
    def q(p):
        pos = p * (len(xs) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])
    return q(0.25), q(0.5), q(0.75)


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 1e-3:
        return "%.2e" % x
    return "%.4g" % x


def summarize(results, asks, budgets, seeds_note):
    lines = []
    order = []
    for r in results:
        key = (r["impl"], r["tuner"])
        if key not in order:
            order.append(key)
    med = {}
    for fname in FUNCTIONS:
        lines.append("\n#### %s (optimum %s)\n" % (fname, OPTIMA[fname]))
        lines.append("| tuner | " + " | ".join("regret @%d: median [q25, q75]" % b for b in budgets) + " | seeds |")
        lines.append("|---|" + "---|" * len(budgets) + "---|")
        for impl, tuner in order:
            rs = [r for r in results if r["impl"] == impl and r["tuner"] == tuner and r["function"] == fname]
            if not rs:
                continue
            cells = []
            for b in budgets:
                xs = [r["regret"][str(b)] for r in rs if str(b) in r["regret"]]
                if not xs:
                    cells.append("-")
                    continue
                q1, m, q3 = quartiles(xs)
                med[(impl, tuner, fname, b)] = m
                cells.append("%s [%s, %s]" % (fmt(m), fmt(q1), fmt(q3)))
            lines.append("| %s %s | %s | %d |" % (impl, tuner, " | ".join(cells), len(rs)))
    if asks:
        sizes = sorted({int(k) for a in asks for k in a["ask_ms"]})
        lines.append("\n#### Ask time (ms, median of consecutive asks; history of N finished trials, hartmann6)\n")
        lines.append("| tuner | how N is reached | " + " | ".join("N=%d" % s for s in sizes) + " |")
        lines.append("|---|---|" + "---|" * len(sizes))
        for a in asks:
            lines.append("| %s %s | %s | %s |" % (a["impl"], a["tuner"],
                                                  "real run" if a.get("mode") == "run" else "random trials added",
                                                  " | ".join(fmt(a["ask_ms"][str(s)]) if str(s) in a["ask_ms"]
                                                             else "-" for s in sizes)))
    # Ratios the issue asks about (median regret, Kestrel / Optuna).
    pairs = [("kestrel", "tpe", "optuna", "tpe"), ("kestrel", "gp", "optuna", "gp"), ("kestrel", "cmaes", "optuna", "cmaes")]
    lines.append("\n#### Median-regret ratios (Kestrel / Optuna; < 1 means Kestrel is better)\n")
    lines.append("| pair | " + " | ".join("%s @%d" % (f, b) for f in FUNCTIONS for b in budgets) + " |")
    lines.append("|---|" + "---|" * (len(FUNCTIONS) * len(budgets)))
    for ki, kt, oi, ot in pairs:
        cells = []
        for f in FUNCTIONS:
            for b in budgets:
                a, c = med.get((ki, kt, f, b)), med.get((oi, ot, f, b))
                cells.append("-" if a is None or c is None else ("%.3g" % (a / c) if c > 0 else ("=" if a == 0 else "inf")))
        if any(c != "-" for c in cells):
            lines.append("| %s %s / %s %s | %s |" % (ki, kt, oi, ot, " | ".join(cells)))
    # Kestrel tuners against random search and against Optuna's best sampler.
    lines.append("\n#### Checks\n")
    for impl, tuner in order:
        if impl != "kestrel" or tuner == "random":
            continue
        worse = [(f, b) for f in FUNCTIONS for b in budgets
                 if (impl, tuner, f, b) in med and ("kestrel", "random", f, b) in med
                 and med[(impl, tuner, f, b)] > med[("kestrel", "random", f, b)]]
        lines.append("- kestrel %s worse than kestrel random (median): %s" %
                     (tuner, ", ".join("%s@%d" % w for w in worse) if worse else "nowhere"))
    for f in FUNCTIONS:
        for b in budgets:
            opt = [(med[k], k[1]) for k in med if k[0] == "optuna" and k[2] == f and k[3] == b]
            kes = [(med[k], k[1]) for k in med if k[0] == "kestrel" and k[2] == f and k[3] == b]
            if opt and kes:
                lines.append("- %s @%d: best Optuna %s %s, best Kestrel %s %s" %
                             (f, b, min(opt)[1], fmt(min(opt)[0]), min(kes)[1], fmt(min(kes)[0])))
    lines.append("\n" + seeds_note)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "tuners", "tuner_bench"))
    ap.add_argument("--seeds", type=int, default=15)
    ap.add_argument("--budgets", default="50,200")
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--kestrel", default='random=random,sobol=sobol,tpe=tpe,tpe_indep=tpe:{"multivariate":false},cmaes=cmaes',
                    help="comma-separated NAME=KIND[:JSON] (JSON without commas, or use ; between entries)")
    ap.add_argument("--optuna", default="random,tpe,tpe_mv,cmaes,gp")
    ap.add_argument("--gp-seeds", type=int, default=None, help="seeds for GP samplers on both sides (default --seeds)")
    ap.add_argument("--gp-budgets", default=None, help="budgets for Optuna's GPSampler (default --budgets)")
    ap.add_argument("--ask-sizes", default="100,500,1000")
    ap.add_argument("--gp-ask-sizes", default=None, help="ask-time sizes for GP samplers (default --ask-sizes)")
    ap.add_argument("--no-ask", action="store_true")
    ap.add_argument("--no-optuna", action="store_true")
    ap.add_argument("--optuna-from", default=None,
                    help="take the Optuna rows from earlier raw.jsonl files (comma-separated; a later file's row for "
                         "the same sampler, function and seed replaces an earlier one) instead of running Optuna")
    ap.add_argument("--kestrel-from", default=None,
                    help="take the Kestrel rows from earlier raw.jsonl files (comma-separated) instead of running them")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--optuna-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.optuna_worker:
        return optuna_worker(args)

    budgets = [int(b) for b in args.budgets.split(",")]
    gp_budgets = [int(b) for b in args.gp_budgets.split(",")] if args.gp_budgets else budgets
    gp_seeds = args.gp_seeds if args.gp_seeds is not None else args.seeds
    sizes = [int(s) for s in args.ask_sizes.split(",")]
    gp_sizes = [int(s) for s in args.gp_ask_sizes.split(",")] if args.gp_ask_sizes else sizes
    functions = args.functions.split(",")
    os.makedirs(args.out, exist_ok=True)
    sep = ";" if ";" in args.kestrel else ","
    kestrel = []
    for item in args.kestrel.split(sep):
        name, spec = item.split("=", 1)
        kind, _, js = spec.partition(":")
        kestrel.append((name, kind, json.loads(js) if js else {}))
    started = time.time()
    results, asks = [], []

    for name, kind, params in ([] if args.kestrel_from else kestrel):
        for fname in functions:
            if kind == "cmaes" and fname == "mixed":
                continue  # Kestrel's CMA-ES refuses categorical parameters (by design; see tuners/cmaes.hpp)
            n = gp_seeds if kind == "gp" else args.seeds
            t0 = time.time()
            results += run_kestrel(args.bin, name, kind, params, fname, n, budgets, args.jobs)
            print("kestrel %-10s %-12s %5.1fs" % (name, fname, time.time() - t0), flush=True)
        if not args.no_ask:
            s = gp_sizes if kind == "gp" else sizes
            asks.append(kestrel_ask(args.bin, name, kind, params, "hartmann6", s, kind == "cmaes"))
            print("kestrel %-10s ask times %s" % (name, asks[-1]["ask_ms"]), flush=True)

    def load_rows(paths, impl):
        rows = {}
        for path in paths.split(","):
            with open(path) as f:
                for line in f:
                    d = json.loads(line)
                    if d["impl"] == impl and d["function"] in functions:
                        rows[(d["tuner"], d["function"], d["seed"], "regret" in d)] = d
        for d in rows.values():
            (asks if "ask_ms" in d and "regret" not in d else results).append(d)

    if args.kestrel_from:
        load_rows(args.kestrel_from, "kestrel")
    note = ""
    if args.optuna_from:
        load_rows(args.optuna_from, "optuna")
        note = "Optuna rows taken from %s (earlier runs of this script)." % args.optuna_from
    elif not args.no_optuna:
        if not ensure_venv(os.path.join(args.out, "pip.log")):
            note = "Optuna side skipped: the venv could not be set up (see %s)." % os.path.join(args.out, "pip.log")
            print(note)
        else:
            version = subprocess.run([VENV_PY, "-c", "import optuna; print(optuna.__version__)"],
                                     capture_output=True, text=True).stdout.strip()
            note = "Optuna %s." % version
            for sampler in args.optuna.split(","):
                jobs = []
                for fname in functions:
                    n = gp_seeds if sampler == "gp" else args.seeds
                    b = gp_budgets if sampler == "gp" else budgets
                    jobs += [{"kind": "regret", "tuner": sampler, "function": fname, "seed": s, "budgets": b}
                             for s in range(n)]
                if not args.no_ask:
                    jobs.append({"kind": "ask", "tuner": sampler, "function": "hartmann6", "seed": 0,
                                 "sizes": gp_sizes if sampler == "gp" else sizes, "real_run": sampler == "cmaes"})
                t0 = time.time()
                p = subprocess.run([VENV_PY, os.path.abspath(__file__), "--optuna-worker", "--jobs", str(args.jobs)],
                                   input=json.dumps(jobs), capture_output=True, text=True)
                if p.returncode != 0:
                    print(p.stderr[-3000:])
                    raise RuntimeError("Optuna worker failed for " + sampler)
                for line in p.stdout.splitlines():
                    d = json.loads(line)
                    (asks if "ask_ms" in d and "regret" not in d else results).append(d)
                print("optuna  %-10s all functions %6.1fs" % (sampler, time.time() - t0), flush=True)

    with open(os.path.join(args.out, "raw.jsonl"), "w") as f:
        for r in results + asks:
            f.write(json.dumps(r) + "\n")
    seeds_note = ("Seeds 0..%d (GP samplers: %d seeds, Optuna GPSampler budgets %s); %s Wall time of this run: %.0f s."
                  % (args.seeds - 1, gp_seeds, ",".join(map(str, gp_budgets)), note, time.time() - started))
    table = summarize(results, asks, budgets, seeds_note)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
