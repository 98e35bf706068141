#!/usr/bin/env bash
# The default job (`metaq train`, no flags: nav2d, MAML with the settings tuned for it,
# config.TUNED) over 3 training seeds: each seed's one-line summary (held-out return after 0/1/2/3
# inner steps, beside pretraining, random init and the oracle) and wall time. Then the same over
# MetaConfig's own defaults (`--no-tuned`: plain second-order MAML, 16 envs × 50-step rollouts).
set -euo pipefail
cd "$(dirname "$0")/../.."
source results/produce.sh
default_job() {  # default_job SETTING: its three seeds' lines into results/default/SETTING.txt
  local out=results/default/$1.txt seed start line lines=""
  for seed in 0 1 2; do
    start=$(date +%s)
    line=$(metaq train "--$1" --seed "$seed" --run-dir "$(mktemp -d)/run" | tail -1)
    lines+="seed $seed, $(( $(date +%s) - start )) s: $line"$'\n'
  done
  printf %s "$lines" > "$out.tmp" && mv "$out.tmp" "$out"  # the old file stays until all three ran
}
for setting in ${@:-tuned no-tuned}; do  # or only those named: bash results/default/regenerate.sh tuned
  produce "results/default/$setting.txt" default_job "$setting"
  cat "results/default/$setting.txt"
done
