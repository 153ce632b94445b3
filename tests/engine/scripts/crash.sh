#!/bin/sh
# Test command: reports once, then dies of SIGSEGV.
echo "step=0 loss=1"
kill -SEGV $$
