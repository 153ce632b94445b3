# Tables for bench/RESULTS.md from bench/robust/run.sh's outputs.
#   summarize.py parity KESTREL.jsonl TORCH.jsonl    one row per (attack, epsilon): accuracies, difference, medians
#   summarize.py advtrain STANDARD.json ADVERSARIAL.json   clean and robust test accuracy of the two CNNs
import json
import statistics
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def key(r):
    return (r["epsilon"], r["attack"], r["random_start"])


def parity(kpath, tpath):
    k = {key(r): r for r in rows(kpath)}
    t = {key(r): r for r in rows(tpath)}
    any_row = next(iter(k.values()))
    print(f"clean test accuracy: Kestrel {100 * any_row['clean_accuracy']:.2f}%, "
          f"PyTorch {100 * next(iter(t.values()))['clean_accuracy']:.2f}% (n = {any_row['n']})")
    print("| attack | epsilon | Kestrel acc | PyTorch acc | difference (points) | Kestrel s (median) | PyTorch s (median) |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for kk in sorted(k):
        if kk not in t:
            continue
        a, b = k[kk], t[kk]
        name = a["attack"] + ("" if a["attack"] == "fgsm" else f"-{a['steps']}") + (" random start" if a["random_start"] else "")
        d = 100 * (a["accuracy"] - b["accuracy"])
        if not a["random_start"]:
            worst = max(worst, abs(d))
        print(f"| {name} | {a['epsilon']:g} | {100 * a['accuracy']:.2f}% | {100 * b['accuracy']:.2f}% | {d:+.2f} | "
              f"{statistics.median(a['seconds']):.2f} | {statistics.median(b['seconds']):.2f} |")
    print(f"largest difference without random start: {worst:.2f} points ({'within' if worst <= 0.5 else 'OUTSIDE'} 0.5)")


def advtrain(spath, apath):
    print("| training | clean test acc | FGSM 0.05 | PGD-10 0.05 | FGSM 0.1 | PGD-10 0.1 | flags | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path in (("standard", spath), ("fast FGSM-RS adversarial", apath)):
        j = json.load(open(path))
        r = j["robustness"]
        acc = {(x["attack"], x["epsilon"]): x["accuracy"] for x in r["results"]}
        cells = [f"{100 * acc.get((a, e), float('nan')):.2f}%" for e in (0.05, 0.1) for a in ("fgsm", "pgd")]
        train_s = j["final"]["wall_seconds"]
        print(f"| {label} | {100 * r['clean_accuracy']:.2f}% | " + " | ".join(cells) +
              f" | {len(r['flags'])} | {train_s:.0f} |")
        for f in r["flags"]:
            print(f"  flag {f['check']}: {f['message']}")


if __name__ == "__main__":
    {"parity": parity, "advtrain": advtrain}[sys.argv[1]](*sys.argv[2:])
