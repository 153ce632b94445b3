#!/bin/sh
# Example trial program for configs/command.yaml: a quadratic bowl in (x, y), reported as a 5-step learning curve.
# Usage: quadratic.sh X Y OPT; momentum and layers arrive as KESTREL_PARAM_MOMENTUM / KESTREL_PARAM_LAYERS.
x="$1"; y="$2"; opt="$3"
awk -v x="$x" -v y="$y" -v opt="$opt" -v m="${KESTREL_PARAM_MOMENTUM:-0}" -v l="${KESTREL_PARAM_LAYERS:-1}" 'BEGIN {
  base = (x - 1.5) ^ 2 + (y + 0.5) ^ 2 + (opt == "adam" ? 0.0 : 0.3 * (1 - m)) + 0.05 * (l - 2) ^ 2
  for (s = 0; s < 5; s++) printf "step=%d loss=%.9g\n", s, base + (4 - s) * 0.1
}'
