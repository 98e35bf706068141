#!/usr/bin/env bash
# The default job (`metaq train`, no flags: nav2d, MAML with the settings tuned for it,
# config.TUNED) over 3 training seeds: each seed's one-line summary (held-out return after 0/1/2/3
# inner steps, beside pretraining, random init and the oracle) and wall time. Then the same over
# MetaConfig's own defaults (`--no-tuned`: plain second-order MAML, 16 envs × 50-step rollouts).
set -euo pipefail
cd "$(dirname "$0")/../.."
for setting in ${@:-tuned no-tuned}; do  # or only those named: bash results/default/regenerate.sh tuned
  out=results/default/$setting.txt
  : > "$out"
  for seed in 0 1 2; do
    start=$(date +%s)
    line=$(metaq train "--$setting" --seed "$seed" --run-dir "$(mktemp -d)/run" | tail -1)
    echo "seed $seed, $(( $(date +%s) - start )) s: $line" >> "$out"
  done
  cat "$out"
done
