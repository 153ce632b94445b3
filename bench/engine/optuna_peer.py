#!/usr/bin/env python3
# Optuna peer of engine_bench.cpp: per-trial ask + tell with RandomSampler at N stored trials, in memory and in SQLite
# on disk, and a whole-process resume of a filled study. Same four parameters, same JSON lines on stdout.
"""Usage (with bench/.venv's python):
  optuna_peer.py [--dir DIR] [--sizes 1000,10000] [--measure 1000] [--measure-file 200] [--stores memory,file]
  optuna_peer.py --fill FILE.db --trials N
  optuna_peer.py --resume FILE.db        (import + load + first ask + tell, then exit; time the process outside)
"""
import argparse
import json
import os
import statistics
import sys
import time

T_START = time.perf_counter()
import optuna  # noqa: E402  (timed: part of a whole-process resume)
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "layers": IntDistribution(1, 8),
    "optimizer": CategoricalDistribution(["sgd", "adam", "adamw"]),
}


def value(params):
    return params["dropout"] + params["layers"]


def open_study(storage):
    return optuna.create_study(study_name="bench", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1),
                               direction="minimize", load_if_exists=True)


def one(study):
    t = study.ask(DISTS)
    study.tell(t, value(t.params))


def storage_for(kind, path):
    if kind == "memory":
        return None  # InMemoryStorage
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return "sqlite:///" + path


def sql_fill(path, n):
    """Makes a SQLite study of n COMPLETE trials: the first through Optuna (ask + tell, Optuna's own rows), the
    other n - 1 as copies of its rows with fresh numbers and random parameter values, in one SQLite transaction.
    Optuna's own ask + tell took 20+ ms of CPU per trial here, so a 10k-trial fill would take many minutes on the
    shared machine; the file is the same shape Optuna writes (checked: load_study sees n trials)."""
    import random
    import sqlite3

    study = open_study(storage_for("file", path))
    one(study)
    del study
    rng = random.Random(1)
    con = sqlite3.connect(path)
    with con:
        (study_id, t0_id, start, complete) = con.execute(
            "SELECT study_id, trial_id, datetime_start, datetime_complete FROM trials WHERE number = 0").fetchone()
        params = con.execute("SELECT param_name, distribution_json FROM trial_params WHERE trial_id = ?",
                             (t0_id,)).fetchall()
        for number in range(1, n):
            cur = con.execute("INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
                              "VALUES (?, ?, 'COMPLETE', ?, ?)", (number, study_id, start, complete))
            tid = cur.lastrowid
            vals = {"lr": 10 ** rng.uniform(-5, -1), "dropout": rng.uniform(0, 0.5), "layers": float(rng.randint(1, 8)),
                    "optimizer": float(rng.randint(0, 2))}
            for name, dist in params:
                con.execute("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                            "VALUES (?, ?, ?, ?)", (tid, name, vals[name], dist))
            con.execute("INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, 0, ?, 'FINITE')",
                        (tid, vals["dropout"] + vals["layers"]))
    con.close()
    loaded = len(optuna.load_study(study_name="bench", storage="sqlite:///" + path).trials)
    if loaded != n:
        raise SystemExit("sql_fill: Optuna loads %d trials, expected %d" % (loaded, n))


def overhead(kind, stored, measure, d, measure_file):
    if kind == "memory":
        study = open_study(None)
        t0 = time.perf_counter()
        for _ in range(stored):
            one(study)
        fill_ms = (time.perf_counter() - t0) * 1000.0
    else:
        path = os.path.join(d, "optuna-%d.db" % stored)
        sql_fill(path, stored)
        fill_ms = None
        study = open_study("sqlite:///" + path)
        measure = measure_file
    per = []
    for _ in range(measure):
        t1 = time.perf_counter()
        one(study)
        per.append((time.perf_counter() - t1) * 1000.0)
    per.sort()
    print(json.dumps({"store": kind, "stored": stored, "measured": measure,
                      "fill_mean_ms": None if fill_ms is None else fill_ms / max(stored, 1), "filled_by_sql": kind == "file", "ask_tell_mean_ms": statistics.fmean(per),
                      "ask_tell_p50_ms": per[len(per) // 2],
                      "ask_tell_p99_ms": per[min(len(per) - 1, int(0.99 * len(per)))]}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/kestrel_engine_bench")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--measure", type=int, default=1000)
    ap.add_argument("--measure-file", type=int, default=200, help="trials timed in SQLite (slow at Optuna defaults)")
    ap.add_argument("--stores", default="memory,file")
    ap.add_argument("--fill")
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--resume")
    a = ap.parse_args()
    if a.resume:
        study = open_study("sqlite:///" + a.resume)
        t = study.ask(DISTS)
        study.tell(t, value(t.params))
        print(json.dumps({"resume_trial_number": t.number,
                          "import_load_ask_tell_ms": (time.perf_counter() - T_START) * 1000.0}))
        return
    if a.fill:
        sql_fill(a.fill, a.trials)
        print(json.dumps({"filled": a.trials}))
        return
    os.makedirs(a.dir, exist_ok=True)
    for kind in a.stores.split(","):
        for n in a.sizes.split(","):
            overhead(kind, int(n), a.measure, a.dir, a.measure_file)


if __name__ == "__main__":
    sys.exit(main())
