#!/bin/sh
# Fashion-MNIST multi-fidelity figure (bench/RESULTS.md, "Multi-fidelity"): builds mf_fashion in BUILD and runs ASHA
# of the built-in trainer against a full-budget sweep of the same configurations; prints the JSON summary.
# Usage: bench/multifidelity/fashion_asha.sh BUILD OUT_DIR [mf_fashion options: --configs 27 --max-epochs 9 ...]
set -e
build="$1"
out="$2"
shift 2
ninja -C "$build" -j2 mf_fashion
mkdir -p "$out"
/usr/bin/time -v "$build/bench/multifidelity/mf_fashion" "$out/run" "$@" > "$out/summary.json" 2> "$out/time.txt"
cat "$out/summary.json"
grep -E "Elapsed|Maximum resident" "$out/time.txt"
