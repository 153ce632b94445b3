#!/bin/sh
# Test command: one Katib-style metric line per step, plus a log line that is not a metric.
# Final loss = $1 (default 1).
v=${1:-1}
echo "starting"
echo "step=0 loss=$((v + 2))"
echo "step=1 loss=$((v + 1)) acc=0.5"
echo "step=2 loss=$v"
