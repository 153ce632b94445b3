#!/bin/sh
# Test command: leaves a background child holding stdout open, then exits successfully.
sleep 1000 &
echo $! > "$KESTREL_TRIAL_DIR/bgpid"
echo "loss=1"
