#!/bin/sh
# Test command: reports once, then never ends.
echo $$ > "$KESTREL_TRIAL_DIR/pid"
echo "step=0 loss=1"
while :; do sleep 1; done
