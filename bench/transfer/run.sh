#!/usr/bin/env bash
# Transfer-learning benchmark (bench/transfer/transfer_bench.cpp): builds the bench program in
# BUILD (default build-bench, RelWithDebInfo: the trainer library is compiled -O3 either way),
# runs the settings of bench/RESULTS.md ("Transfer learning") with one thread (on a busy machine two
# OpenMP threads spin-wait and run many times slower) and keeps the JSON lines and the summary table
# in BUILD/results/transfer-*. Later options override the defaults.
# Usage: bench/transfer/run.sh [transfer_bench options, e.g. --seeds 1 --model configs/models/cnn5.yaml]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=$BUILD/results/transfer-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKESTREL_CUDA=OFF >"$OUT/cmake.log"
fi
ninja -C "$BUILD" -j2 kestrel_transfer_bench >"$OUT/ninja.log"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"
/usr/bin/time -v "$BUILD/bench/transfer/kestrel_transfer_bench" --seeds 1,2,3 --labels 100,1000 --epochs 30 \
  --epochs-large 8 --pretrain-epochs 3 --threads 1 --out "$OUT/runs.jsonl" "$@" \
  2> "$OUT/time.txt" | tee "$OUT/stdout.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"
grep -E "Elapsed|Maximum resident" "$OUT/time.txt" || true
python3 "$ROOT/bench/transfer/summarize.py" "$OUT/runs.jsonl" | tee "$OUT/summary.md"
echo "results in $OUT"
