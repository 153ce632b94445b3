#!/bin/sh
# Test command: the loss diverges to NaN at the last step.
echo "step=0 loss=0.5"
echo "step=1 loss=nan"
