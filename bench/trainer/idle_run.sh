#!/usr/bin/env bash
# The Kestrel half of the trainer benchmark on another (idle) machine, pinned to 2 cores, for a
# static binary and the data carried there; runs the PyTorch peer too when that machine has torch.
# Usage: bench/trainer/idle_run.sh BINARY DATA_DIR OUT_DIR [REPEATS=3]
set -uo pipefail
BIN=$1 DATA=$2 OUT=$3 REPEATS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -v)
HAVE_TORCH=0
python3 -c 'import torch, numpy' 2>/dev/null && HAVE_TORCH=1
echo "torch here: $HAVE_TORCH"
for rep in $(seq 1 "$REPEATS"); do
  for model in mlp cnn; do
    epochs=10
    [ "$model" = cnn ] && epochs=3
    taskset -c 0,1 "${TIME[@]}" "$BIN" "$ROOT/configs/models/$model.yaml" "$epochs" 2 "$rep" "$DATA" \
      >"$OUT/$model-kestrel-$rep.json" 2>"$OUT/$model-kestrel-$rep.time"
    echo "$model kestrel $rep: $(head -c 400 "$OUT/$model-kestrel-$rep.json")"
    if [ "$HAVE_TORCH" = 1 ]; then
      FASHION_MNIST_DIR=$DATA taskset -c 0,1 "${TIME[@]}" python3 "$ROOT/bench/trainer/torch_peer.py" "$model" "$epochs" 2 "$rep" \
        >"$OUT/$model-torch-$rep.json" 2>"$OUT/$model-torch-$rep.time"
      echo "$model torch $rep: $(head -c 400 "$OUT/$model-torch-$rep.json")"
    fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
