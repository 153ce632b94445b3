#!/usr/bin/env bash
# Adversarial robustness benchmarks (bench/RESULTS.md, "Adversarial robustness").
#  parity:   Kestrel trains the MLP (mlp_parity.yaml), PyTorch loads the same weights (safetensors) and both run
#            FGSM, PGD-10 and PGD-10 with a random start at epsilon 0.05 and 0.1 on the test set, REPEATS times
#            (attack time: median); accuracies must agree within 0.5 points (without random start).
#  advtrain: the small CNN trained normally and with fast FGSM adversarial training (cnn_*.yaml), each attacked
#            with FGSM and PGD-10 at 0.05 and 0.1 on the test set (kestrel train --json).
# Usage: bench/robust/run.sh [parity|advtrain|all] [BUILD_DIR=build-tcore] [REPEATS=3]
set -euo pipefail
WHAT=${1:-all}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${2:-$ROOT/build-tcore}
REPEATS=${3:-3}
OUT=$BUILD/robust-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
echo "results in $OUT; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKESTREL_CUDA=OFF >/dev/null

if [ "$WHAT" = parity ] || [ "$WHAT" = all ]; then
  ninja -C "$BUILD" -j2 kestrel_robust_bench >/dev/null
  # PyTorch peer in the shared benchmark venv (CPU wheels are enough; created from PyPI when missing).
  VENV=$ROOT/bench/.venv
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/pip" install -q torch numpy
  "$BUILD/bench/robust/kestrel_robust_bench" "$ROOT/bench/robust/mlp_parity.yaml" "$OUT/parity" --repeats "$REPEATS" \
    | tee "$OUT/parity-kestrel.jsonl"
  "$VENV/bin/python" "$ROOT/bench/robust/torch_attack.py" "$OUT/parity" --repeats "$REPEATS" | tee "$OUT/parity-torch.jsonl"
  python3 "$ROOT/bench/robust/summarize.py" parity "$OUT/parity-kestrel.jsonl" "$OUT/parity-torch.jsonl"
fi

if [ "$WHAT" = advtrain ] || [ "$WHAT" = all ]; then
  ninja -C "$BUILD" -j2 kestrel >/dev/null
  for f in cnn_standard cnn_adversarial; do
    /usr/bin/time -f "%e s wall" "$BUILD/cli/kestrel" train "$ROOT/bench/robust/$f.yaml" --json >"$OUT/$f.json"
  done
  python3 "$ROOT/bench/robust/summarize.py" advtrain "$OUT/cnn_standard.json" "$OUT/cnn_adversarial.json"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
