#!/usr/bin/env python3
# NAS benchmark harness: runs the Kestrel controllers through nas_bench and Optuna's TPE (independent and
# multivariate) on the same synthetic cell scores, seeds and budgets; writes raw.jsonl and summary.md.
"""Kestrel NAS controllers vs Optuna TPE on the synthetic NAS-Bench-201-style cell score.

The C++ driver (nas_bench) builds one synthetic score per seed (nas/synthetic.hpp), runs every Kestrel method on
it and dumps the true-quality table of every cell (15,625 values per seed). Optuna then searches the same six
categorical choices (one per edge, the op names as choices) on the same tables with Gaussian evaluation noise of
the same sd (its own noise stream). The reported number is the best TRUE quality among the evaluated cells after
each budget (units: sd of the true quality over valid cells; higher is better), and its regret to the optimum.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def ensure_venv():
    """Re-executes inside bench/.venv (created with the newest Optuna from PyPI when missing)."""
    venv = os.path.join(ROOT, "bench", ".venv")
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "--upgrade", "optuna", "numpy"])
    try:
        subprocess.check_call([py, "-c", "import optuna, numpy"])
    except subprocess.CalledProcessError:
        subprocess.check_call([py, "-m", "pip", "install", "--upgrade", "optuna", "numpy"])
    os.execv(py, [py] + sys.argv)


def run_optuna(tables, evals, budgets, samplers):
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ops, edges = tables["ops"], tables["edges"]
    K = len(ops)
    rows = []
    for entry in tables["seeds"]:
        seed, table, noise = entry["seed"], entry["table"], entry["noise"]
        for name in samplers:
            if name == "optuna_tpe":
                sampler = optuna.samplers.TPESampler(seed=seed, multivariate=False)  # Optuna 5 defaults to True
            elif name == "optuna_tpe_mv":
                sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            elif name == "optuna_random":
                sampler = optuna.samplers.RandomSampler(seed=seed)
            else:
                raise SystemExit("unknown Optuna sampler " + name)
            rng = np.random.default_rng(7000 + seed)
            true_q = []

            def objective(trial):
                idx = 0
                # Mixed radix with edge 0 least significant (CellSpace::index_of).
                for e in reversed(range(len(edges))):
                    idx = idx * K + ops.index(trial.suggest_categorical(edges[e], ops))
                q = table[idx]
                true_q.append(q)
                return q + noise * rng.standard_normal()

            study = optuna.create_study(direction="maximize", sampler=sampler)
            t0 = time.time()
            study.optimize(objective, n_trials=evals)
            secs = time.time() - t0
            best = {str(b): max(true_q[:b]) for b in budgets}
            rows.append({"method": name, "seed": seed, "optimum": entry["optimum"], "best": best, "seconds": secs})
            print(json.dumps(rows[-1]), flush=True)
    return rows, optuna.__version__


def summarize(rows, budgets, optuna_version, cmd):
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    by = {m: [r for r in rows if r["method"] == m] for m in methods}
    opt_mean = sum(r["optimum"] for r in by[methods[0]]) / len(by[methods[0]])
    lines = []
    lines.append("Command: `" + cmd + "`  ")
    lines.append("Optuna %s. Seeds: %d per method (a different synthetic function per seed). Mean optimum: %.3f." %
                 (optuna_version, len(by[methods[0]]), opt_mean))
    lines.append("")
    lines.append("Regret = optimum - best true quality found (mean ± sd over seeds; units: sd of the true quality over "
                 "valid cells). Gap closed = share of random search's mean regret @100 removed.")
    lines.append("")
    head = "| method | " + " | ".join("regret @%d" % b for b in budgets) + " | gap closed @100 | s/run |"
    lines.append(head)
    lines.append("|" + "---|" * (len(budgets) + 3))
    rand = by.get("random")
    for m in methods:
        rs = by[m]
        cells = []
        for b in budgets:
            v = [r["optimum"] - r["best"][str(b)] for r in rs]
            mean = sum(v) / len(v)
            sd = math.sqrt(sum((x - mean) ** 2 for x in v) / max(1, len(v) - 1))
            cells.append("%.3f ± %.3f" % (mean, sd))
        gap = ""
        if rand and "100" in rs[0]["best"]:
            rr = sum(r["optimum"] - r["best"]["100"] for r in rand) / len(rand)
            mr = sum(r["optimum"] - r["best"]["100"] for r in rs) / len(rs)
            gap = "%.0f%%" % (100.0 * (rr - mr) / rr) if rr > 0 else "-"
        secs = sum(r["seconds"] for r in rs) / len(rs)
        lines.append("| %s | %s | %s | %.2f |" % (m, " | ".join(cells), gap, secs))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "nas", "nas_bench"))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--evals", type=int, default=300)
    ap.add_argument("--budgets", default="50,100,300")
    ap.add_argument("--methods", default=None, help="nas_bench --methods (default: all Kestrel methods)")
    ap.add_argument("--optuna", default="optuna_tpe,optuna_tpe_mv", help="comma list; optuna_random also works")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--from-raw", default=None,
                    help="comma list of raw .jsonl files: only summarize them (e.g. raw.jsonl,raw_variants.jsonl)")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    ensure_venv()
    if args.from_raw:
        rows = [json.loads(l) for f in args.from_raw.split(",") for l in open(f) if l.strip()]
        import importlib.metadata as md
        try:
            version = md.version("optuna")
        except md.PackageNotFoundError:
            version = "?"
        summary = summarize(rows, budgets, version, "bench/nas/run_bench.py " + " ".join(sys.argv[1:]))
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(summary)
        print(summary)
        return
    os.makedirs(args.out, exist_ok=True)
    tables_path = os.path.join(args.out, "tables.json")
    cmd = [args.bin, "--seeds", str(args.seeds), "--evals", str(args.evals), "--budgets", args.budgets,
           "--dump-tables", tables_path]
    if args.methods:
        cmd += ["--methods", args.methods]
    rows = []
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        if line.strip():
            rows.append(json.loads(line))
            print(line, flush=True)
    with open(tables_path) as f:
        tables = json.load(f)
    opt_rows, version = run_optuna(tables, args.evals, budgets, [s for s in args.optuna.split(",") if s])
    rows += opt_rows
    with open(os.path.join(args.out, "raw.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    summary = summarize(rows, budgets, version, "bench/nas/run_bench.py " + " ".join(sys.argv[1:]))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(summary)
    os.remove(tables_path)  # 15,625 floats per seed: regenerated by nas_bench whenever needed
    print(summary)


if __name__ == "__main__":
    main()
