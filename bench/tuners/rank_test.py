#!/usr/bin/env python3
# Two-sided Mann-Whitney U test of Kestrel's against Optuna's regrets, per function and budget, from raw.jsonl files
# of run_bench.py: says whether a gap between two medians is more than seed-to-seed noise. Needs scipy (bench/.venv).
"""Usage: bench/.venv/bin/python bench/tuners/rank_test.py --kestrel FILES --optuna FILES [--pair tpe:tpe]

FILES are comma-separated raw.jsonl paths (a later file's row for the same tuner, function and seed wins).
--pair KESTREL_TUNER:OPTUNA_SAMPLER names the rows to compare (default tpe:tpe)."""
import argparse
import json
import statistics

from scipy.stats import mannwhitneyu


def load(paths, impl, tuner):
    rows = {}
    for path in paths.split(","):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("impl") == impl and r.get("tuner") == tuner and "regret" in r:
                    rows[(r["function"], r["seed"])] = r["regret"]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kestrel", required=True)
    ap.add_argument("--optuna", required=True)
    ap.add_argument("--pair", default="tpe:tpe")
    args = ap.parse_args()
    kt, ot = args.pair.split(":")
    kes, opt = load(args.kestrel, "kestrel", kt), load(args.optuna, "optuna", ot)
    print("| function | budget | seeds K / O | median Kestrel | median Optuna | ratio | Mann-Whitney p |")
    print("|---|---|---|---|---|---|---|")
    for f in sorted({k[0] for k in kes} & {k[0] for k in opt}):
        for b in ("50", "200"):
            k = [v[b] for (ff, _), v in kes.items() if ff == f and b in v]
            o = [v[b] for (ff, _), v in opt.items() if ff == f and b in v]
            if len(k) < 2 or len(o) < 2:
                continue
            mk, mo = statistics.median(k), statistics.median(o)
            p = mannwhitneyu(k, o, alternative="two-sided").pvalue
            print("| %s | %s | %d / %d | %.4g | %.4g | %.2f | %.2f |" % (f, b, len(k), len(o), mk, mo, mk / mo, p))


if __name__ == "__main__":
    main()
