#!/bin/sh
# A checkpointing stand-in for a training command (checkpoint lifecycle tests): continues from the step stored in
# $KESTREL_RESTORE_FROM/state, prints one metric line per step up to $KESTREL_BUDGET, then saves its step.
# Usage: ckpt_steps.sh X {checkpoint_dir} {restore_from}. The placeholders must agree with the environment.
# Writes <trial_dir>/restored_from (the folder it started from, or "none") and <trial_dir>/steps_run.
set -e
x="$1"
if [ "$2" != "$KESTREL_CHECKPOINT_DIR" ]; then
  echo "argv checkpoint_dir '$2' differs from KESTREL_CHECKPOINT_DIR '$KESTREL_CHECKPOINT_DIR'" >&2
  exit 3
fi
if [ "$3" != "${KESTREL_RESTORE_FROM:-}" ]; then
  echo "argv restore_from '$3' differs from KESTREL_RESTORE_FROM '${KESTREL_RESTORE_FROM:-}'" >&2
  exit 3
fi
budget=$(awk -v b="$KESTREL_BUDGET" 'BEGIN { printf "%d", b + 0.5 }')
start=0
if [ -n "${KESTREL_RESTORE_FROM:-}" ]; then
  if [ ! -f "$KESTREL_RESTORE_FROM/state" ]; then
    echo "no state in $KESTREL_RESTORE_FROM" >&2
    exit 4
  fi
  read -r start < "$KESTREL_RESTORE_FROM/state"
fi
echo "${KESTREL_RESTORE_FROM:-none}" > "$KESTREL_TRIAL_DIR/restored_from"
echo $((budget - start)) > "$KESTREL_TRIAL_DIR/steps_run"
# loss(x, s) = (x - 0.3)^2 + 1/s: the ranking of configurations is the same at every step.
awk -v x="$x" -v a="$start" -v b="$budget" 'BEGIN { for (s = a + 1; s <= b; ++s) printf "step=%d loss=%.9f\n", s, (x - 0.3) ^ 2 + 1 / s }'
echo "$budget" > "$KESTREL_CHECKPOINT_DIR/state"
