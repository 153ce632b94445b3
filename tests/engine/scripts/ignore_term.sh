#!/bin/sh
# Test command: ignores SIGTERM (its sleep children inherit that), so only SIGKILL ends it.
trap '' TERM
echo $$ > "$KESTREL_TRIAL_DIR/pid"
echo "step=0 loss=1"
while :; do sleep 1; done
