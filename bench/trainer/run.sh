#!/usr/bin/env bash
# Trainer benchmark: Kestrel's CPU trainer against PyTorch on Fashion-MNIST, side by side.
# Builds a Release trainer, makes the PyTorch venvs, then alternates runs (kestrel, torch, kestrel,
# torch, ...) of the MLP and the CNN with 2 threads and prints medians and ratios (Markdown rows
# for bench/RESULTS.md). Raw JSON results and /usr/bin/time -v reports go to build-bench/results/.
# Usage: bench/trainer/run.sh [REPEATS=3] [MLP_EPOCHS=10] [CNN_EPOCHS=3]
set -euo pipefail

REPEATS=${1:-3}
MLP_EPOCHS=${2:-10}
CNN_EPOCHS=${3:-3}
THREADS=2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build-bench
OUT=$BUILD/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

# 1. Release build of the trainer library, then the bench program against it.
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKESTREL_CUDA=OFF \
  -DKESTREL_BUILD_TESTS=OFF >"$BUILD/cmake.log"
ninja -C "$BUILD" -j2 kestrel_trainer >"$BUILD/ninja.log"
if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -q '^kestrel_train_bench:'; then
  ninja -C "$BUILD" -j2 kestrel_train_bench >>"$BUILD/ninja.log"
  BENCH=$(find "$BUILD" -name kestrel_train_bench -type f -perm -u+x | head -1)
else
  # bench/trainer/CMakeLists.txt not hooked into bench/ yet: compile it the same way by hand.
  BENCH=$BUILD/kestrel_train_bench
  c++ -std=c++20 -O3 -march=native -fopenmp -I"$ROOT" -I/usr/include/eigen3 \
    "$ROOT/bench/trainer/train_bench.cpp" "$BUILD/trainer/libkestrel_trainer.a" -lyaml-cpp -lz -o "$BENCH"
fi

# 2. PyTorch peers: Debian's python3-torch (1.13) through a venv with the system site packages,
#    on the OpenMP build of OpenBLAS (libopenblas0-openmp; Debian's alternatives pick the pthread
#    one by default, so it is put first on the library path); and a PyPI torch if one installs.
PEERS=()
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  DEB_VENV=$BUILD/.venv-debian
  [ -x "$DEB_VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$DEB_VENV"
  OPENMP_BLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp
  PEERS+=("debian:env LD_LIBRARY_PATH=$OPENMP_BLAS $DEB_VENV/bin/python")
else
  echo "Debian's python3-torch is not installed (apt-get install python3-torch libopenblas0-openmp); skipping that peer"
fi
PYPI_VENV=$BUILD/.venv-pypi
if [ ! -x "$PYPI_VENV/bin/python" ] || ! "$PYPI_VENV/bin/python" -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 -m venv "$PYPI_VENV"
  # Plain PyPI torch is the CUDA build: about 5.4 GB installed (torch + nvidia-* + triton).
  "$PYPI_VENV/bin/pip" install -q torch numpy >"$BUILD/pip-torch.log" 2>&1 || echo "PyPI torch did not install (see $BUILD/pip-torch.log)"
fi
if "$PYPI_VENV/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  PEERS+=("pypi:$PYPI_VENV/bin/python")
fi

# 3. Alternate runs; each under /usr/bin/time -v for the peak resident set.
run() {  # name model epochs command...
  local name=$1 model=$2 epochs=$3
  shift 3
  local tag=$OUT/$model-$name-$rep
  /usr/bin/time -v "$@" >"$tag.json" 2>"$tag.time"
  echo "  $model $name run $rep: $(python3 -c "import json,sys; d=json.load(open('$tag.json')); print(' '.join('%.2fs/%.4f' % (e['train_seconds'], e['test_accuracy']) for e in d['epochs']))")"
}
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq 1 "$REPEATS"); do
  for model in mlp cnn; do
    epochs=$MLP_EPOCHS
    [ "$model" = cnn ] && epochs=$CNN_EPOCHS
    run kestrel "$model" "$epochs" "$BENCH" "$ROOT/configs/models/$model.yaml" "$epochs" "$THREADS" "$rep"
    for peer in "${PEERS[@]}"; do
      # shellcheck disable=SC2086
      run "${peer%%:*}" "$model" "$epochs" ${peer#*:} "$ROOT/bench/trainer/torch_peer.py" "$model" "$epochs" "$THREADS" "$rep"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/bench/trainer/summarize.py" "$OUT"
