#!/bin/sh
# Test command: 1000 steps, 0.05 s apart; loss 1 for steps 0-2, then 10 (a threshold pruner stops it at step 3).
echo $$ > "$KESTREL_TRIAL_DIR/pid"
i=0
while [ $i -lt 1000 ]; do
  if [ $i -lt 3 ]; then l=1; else l=10; fi
  echo "step=$i loss=$l"
  i=$((i + 1))
  sleep 0.05
done
