#!/usr/bin/env python3
"""Summarises a bench/trainer/run.sh results folder: medians over runs of seconds per training epoch,
test accuracy at the reported epochs, inference images/s (batch 256) and peak RSS, and the ratio of
Kestrel's training throughput to the faster PyTorch peer's. Prints Markdown table rows.
Usage: summarize.py RESULTS_DIR
"""
import glob
import json
import os
import re
import statistics
import sys

REPORT_EPOCHS = {"mlp": [1, 5, 10], "cnn": [1, 3]}


def peak_rss_mib(path):
    with open(path) as f:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def main():
    out = sys.argv[1]
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        model, impl, _rep = os.path.basename(path)[:-5].split("-")
        try:
            with open(path) as f:
                d = json.load(f)
        except (json.JSONDecodeError, OSError):
            print(f"skipping unreadable {path}", file=sys.stderr)
            continue
        d["rss"] = peak_rss_mib(path[:-5] + ".time")
        runs.setdefault((model, impl), []).append(d)
    print("| model | implementation | runs | s/epoch (median) | "
          "test acc @ epochs (median) | inference img/s @256 | peak RSS MiB | throughput vs fastest PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for model in ["mlp", "cnn"]:
        impls = {impl: rs for (m, impl), rs in runs.items() if m == model}
        if not impls:
            continue
        sec = {impl: statistics.median(e["train_seconds"] for r in rs for e in r["epochs"]) for impl, rs in impls.items()}
        peers = [impl for impl in sec if impl != "kestrel"]
        fastest = min(peers, key=lambda i: sec[i]) if peers else None
        for impl, rs in sorted(impls.items()):
            accs = []
            for ep in REPORT_EPOCHS[model]:
                vals = [e["test_accuracy"] for r in rs for e in r["epochs"] if e["epoch"] == ep]
                if vals:
                    accs.append(f"{ep}: {100 * statistics.median(vals):.2f}%")
            inf = statistics.median(r["inference_images_per_second"] for r in rs)
            rss = statistics.median(r["rss"] for r in rs)
            ratio = f"{sec[fastest] / sec[impl]:.2f}x" if impl == "kestrel" and fastest else ""
            name = impl if impl == "kestrel" else f"pytorch ({impl}, {rs[0].get('torch', '?')})"
            print(f"| {model} | {name} | {len(rs)} | {sec[impl]:.3f} | {', '.join(accs)} | {inf:.0f} | {rss:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
