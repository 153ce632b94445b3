#!/usr/bin/env python3
# Engine overhead benchmark, Kestrel (engine_bench.cpp) and Optuna (optuna_peer.py) side by side in one run:
# ask + tell per trial at 1k and 10k stored trials (SQLite :memory: / Optuna InMemoryStorage, and SQLite on disk),
# and whole-process resume of a 10k-trial study. Prints a Markdown table with medians and ratios, then raw JSON.
"""Usage (from the repository root, after building kestrel_engine in BUILD):
  bench/engine/run_bench.py [--build build-engine] [--dir /var/tmp/kestrel_engine_bench] [--measure 1000]
                            [--measure-file-optuna 200] [--resume-runs 5] [--bin PATH]
--bin uses a ready engine_bench binary; otherwise it is compiled with g++ from BUILD's static libraries.
Optuna comes from bench/.venv (created, and filled with the newest optuna by pip, when missing).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from bench_venv import VENV, VENV_PY, ensure_optuna as _ensure_optuna  # noqa: E402  (bench/bench_venv.py)


def ensure_optuna():
    return _ensure_optuna()


def build(build_dir):
    out = os.path.join(build_dir, "engine_bench")
    libs = [os.path.join(build_dir, d, "libkestrel_%s.a" % d) for d in ("engine", "tuners", "store", "search")]
    subprocess.check_call(["g++", "-std=c++20", "-O2", "-I", ROOT, "-isystem", "/usr/include/eigen3",
                           os.path.join(HERE, "engine_bench.cpp")] + libs +
                          ["-lsqlite3", "-fopenmp", "-lpthread", "-o", out])
    return out


def json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def timed_runs(cmd, n):
    walls = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return walls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-engine")
    ap.add_argument("--bin")
    ap.add_argument("--dir", default="/var/tmp/kestrel_engine_bench")
    ap.add_argument("--measure", type=int, default=1000)
    ap.add_argument("--measure-file-optuna", type=int, default=200)
    ap.add_argument("--resume-runs", type=int, default=5)
    ap.add_argument("--resume-trials", type=int, default=10000)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    binary = a.bin or build(a.build)
    version = ensure_optuna()
    peer = [VENV_PY, os.path.join(HERE, "optuna_peer.py")]

    k = json_lines([binary, "--dir", a.dir, "--measure", str(a.measure)])
    o = json_lines(peer + ["--dir", a.dir, "--measure", str(a.measure), "--measure-file", str(a.measure_file_optuna)])

    kdb, odb = os.path.join(a.dir, "resume-kestrel.db"), os.path.join(a.dir, "resume-optuna.db")
    subprocess.run([binary, "--fill", kdb, "--trials", str(a.resume_trials)], check=True, capture_output=True)
    subprocess.run(peer + ["--fill", odb, "--trials", str(a.resume_trials)], check=True, capture_output=True)
    kres = timed_runs([binary, "--resume", kdb], a.resume_runs)
    ores = timed_runs(peer + ["--resume", odb], a.resume_runs)

    print("Optuna %s, Python %s, %s, %d CPUs, load average %s" % (
        version, platform.python_version(), platform.processor() or platform.machine(), os.cpu_count(),
        " ".join("%.1f" % x for x in os.getloadavg())))
    print()
    print("| store | stored trials | Kestrel ask+tell p50 / mean (ms) | Kestrel optimize() mean (ms) | "
          "Optuna ask+tell p50 / mean (ms) | ratio Optuna/Kestrel (p50) |")
    print("|---|---|---|---|---|---|")
    for kr in k:
        match = [r for r in o if r["store"] == kr["store"] and r["stored"] == kr["stored"]]
        orow = match[0] if match else None
        ratio = orow["ask_tell_p50_ms"] / kr["ask_tell_p50_ms"] if orow else float("nan")
        print("| %s | %d | %.3f / %.3f | %.3f | %s | %.2f |" % (
            "SQLite :memory: vs Optuna in-memory" if kr["store"] == "memory" else "SQLite file (both)",
            kr["stored"], kr["ask_tell_p50_ms"], kr["ask_tell_mean_ms"], kr["optimize_mean_ms"],
            "%.3f / %.3f (n=%d)" % (orow["ask_tell_p50_ms"], orow["ask_tell_mean_ms"], orow["measured"])
            if orow else "-", ratio))
    print()
    print("Whole-process resume of a %d-trial SQLite study (start, open, load, first ask + tell, exit), %d runs:" % (
        a.resume_trials, a.resume_runs))
    print("Kestrel median %.3f s (%s); Optuna median %.3f s (%s); ratio %.1f" % (
        statistics.median(kres), ", ".join("%.3f" % x for x in kres), statistics.median(ores),
        ", ".join("%.3f" % x for x in ores), statistics.median(ores) / statistics.median(kres)))
    print()
    print(json.dumps({"kestrel": k, "optuna": o, "resume_kestrel_s": kres, "resume_optuna_s": ores}))


if __name__ == "__main__":
    main()
