#!/bin/sh
# Test command: JSON-lines metrics with a non-JSON line in between and a final marker line.
echo '{"step": 0, "loss": 0.5}'
echo 'not json'
echo '{"step": 1, "loss": 0.4, "acc": 0.8}'
echo '{"final": true, "loss": 0.25}'
