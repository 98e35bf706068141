#!/usr/bin/env bash
# The default job (`metaq train`, no flags) over 3 training seeds: each seed's one-line summary
# (held-out return after 0/1/2/3 inner steps, beside pretraining, random init and the oracle) and wall time.
set -euo pipefail
out=results/default/summary.txt
: > "$out"
for seed in 0 1 2; do
  start=$(date +%s)
  line=$(metaq train --seed "$seed" --run-dir "$(mktemp -d)/run" | tail -1)
  echo "seed $seed, $(( $(date +%s) - start )) s: $line" >> "$out"
done
cat "$out"
