#!/usr/bin/env python3
# Optuna peers of the multi-fidelity benchmark: MedianPruner, SuccessiveHalvingPruner and HyperbandPruner (TPE
# sampler, Optuna's default), full-budget TPE and full-budget random search, on the curves of curves.hpp.
"""Usage: optuna_peers.py BUDGET_STEPS SEEDS PROBLEM [METHODS [FIRST_SEED]]  ->  one JSON line per (method, seed) on
stdout. METHODS: comma-separated (default all five), FIRST_SEED: seeds FIRST_SEED.. (default 0).

Equal budgets: every method stops when BUDGET_STEPS training steps were spent; a trial cut by the budget end does not
count as finished. Each method picks the COMPLETE trial with the best observed (noisy) final value; the line gives
that configuration's noise-free error after the full 81 steps.
"""
import json
import math
import sys

import optuna

MAX_STEPS = 81
NOISE = 0.01
CENTRE = [0.7, 0.3, 0.5, 0.2, 0.8]
WEIGHT = [1.0, 0.8, 0.6, 0.4, 0.2]


def final_error(x):
    return 0.05 + sum(w * (xi - c) ** 2 for xi, c, w in zip(x, CENTRE, WEIGHT))


def time_constant(x1, problem):
    if problem == "none":
        return 4.0
    return 2.0 + 6.0 * x1 * x1 if problem == "moderate" else 1.0 + 15.0 * x1 * x1


def error_at(x, t, problem):
    f = final_error(x)
    return f + (1.0 - f) * math.exp(-t / time_constant(x[0], problem))


class BudgetSpent(Exception):
    pass


def run(method, seed, budget, problem):
    import random
    rng = random.Random(1000 + seed)
    sampler = optuna.samplers.RandomSampler(seed=seed) if method == "optuna_random" else \
        optuna.samplers.TPESampler(seed=seed)
    pruner = {
        "optuna_median": optuna.pruners.MedianPruner(),
        "optuna_sha": optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "optuna_hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=MAX_STEPS, reduction_factor=3),
    }.get(method, optuna.pruners.NopPruner())
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    state = {"steps": 0}
    truth = {}

    def objective(trial):
        x = [trial.suggest_float("x%d" % i, 0.0, 1.0) for i in range(1, 6)]
        truth[trial.number] = error_at(x, MAX_STEPS, problem)
        v = None
        for step in range(1, MAX_STEPS + 1):
            if state["steps"] >= budget:
                raise BudgetSpent()
            state["steps"] += 1
            v = error_at(x, step, problem) + NOISE * rng.gauss(0.0, 1.0)
            trial.report(v, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return v

    while state["steps"] < budget:
        try:
            study.optimize(objective, n_trials=1, catch=(BudgetSpent,))
        except BudgetSpent:
            break
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = min(done, key=lambda t: t.value) if done else None
    return {"method": method, "seed": seed, "problem": problem, "budget": budget, "steps": state["steps"],
            "trials": len(study.trials), "true_final_error": truth[best.number] if best else None,
            "observed": best.value if best else None}


def main():
    budget, seeds, problem = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    methods = sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else \
        ["optuna_median", "optuna_sha", "optuna_hyperband", "optuna_tpe", "optuna_random"]
    first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for m in methods:
        for s in range(first, first + seeds):
            print(json.dumps(run(m, s, budget, problem)), flush=True)


if __name__ == "__main__":
    main()
