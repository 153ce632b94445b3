#!/bin/sh
# Test command: records its arguments and KESTREL_* environment in the trial folder; loss = parameter x.
for a in "$@"; do printf '%s\n' "$a"; done > "$KESTREL_TRIAL_DIR/args"
env | grep '^KESTREL_' | sort > "$KESTREL_TRIAL_DIR/env"
echo "loss=$KESTREL_PARAM_X"
