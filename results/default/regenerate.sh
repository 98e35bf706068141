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
# A slower setting that closes more of the gap (README, "The default job"): Meta-SGD with the
# multi-step loss on whole 100-step rollouts, 4 envs per task, 1800 meta-steps.
slow=results/default/meta_sgd.txt
: > "$slow"
for seed in 0 1 2; do
  line=$(metaq train --meta-sgd --step-losses --inner-lr 0.1 --meta-sgd-lr 0.03 --rollout-length 100 --num-envs 4 \
    --meta-steps 1800 --seed "$seed" --run-dir "$(mktemp -d)/run" | tail -1)
  echo "seed $seed: $line" >> "$slow"
done
cat "$slow"
