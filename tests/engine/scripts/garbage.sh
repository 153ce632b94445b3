#!/bin/sh
# Test command: prints only lines that are not metrics.
echo "hello"
echo "loss: high"
echo "done === ok"
