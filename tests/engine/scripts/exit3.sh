#!/bin/sh
# Test command: prints a metric and an error on stderr, then exits with code 3.
echo "loss=1"
echo "boom: out of memory" >&2
exit 3
