#!/usr/bin/env python3
"""Summary table of transfer_bench JSON lines (one or more files, e.g. one per seed run in parallel):
test accuracy mean and each seed per (labels per class, variant), median seconds, pseudo-label counts."""
import json
import statistics
import sys
from collections import OrderedDict

groups = OrderedDict()
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                groups.setdefault((r["labels_per_class"], r["variant"]), []).append(r)
print("| labels/class | variant | test acc mean | per seed (seed order) | seconds (median) |")
print("|---|---|---|---|---|")
for (n, variant), rows in sorted(groups.items(), key=lambda kv: (kv[0][0] != 0, kv[0][0] >= 1000, list(groups).index(kv[0]))):
    rows.sort(key=lambda r: r["seed"])
    accs = [100 * r["test_accuracy"] for r in rows]
    secs = statistics.median(r["seconds"] for r in rows)
    label = "all (classes 0-4)" if n == 0 else str(n)
    each = " / ".join(f"{a:.2f}" for a in accs)
    print(f"| {label} | {variant} | {statistics.mean(accs):.2f} | {each} | {secs:.1f} |")
for (n, variant), rows in groups.items():
    for r in sorted(rows, key=lambda r: r["seed"]):
        p = r.get("pseudo_label")
        if not p:
            continue
        for rd in p["rounds"]:
            print(f"seed {r['seed']} round {rd['round']}: teacher test acc {100 * (p['teacher_test_accuracy'] or 0):.2f}, "
                  f"{rd['accepted']} of {rd['unlabeled']} accepted, {100 * (rd['pseudo_accuracy'] or 0):.2f}% of them right, "
                  f"per class {rd['per_class']}, student test acc {100 * (rd['student_test_accuracy'] or 0):.2f}")
