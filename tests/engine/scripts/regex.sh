#!/bin/sh
# Test command: metrics in a free-text format, read with a user regex.
echo "epoch 0: loss 0.5"
echo "epoch 1: loss 0.3"
