#!/usr/bin/env bash
# Every task family at its defaults (`metaq protocol --family F`: second-order MAML, 16 tasks ×
# 16 envs, K = 3, 900 meta-steps) over 3 training seeds, one population per learner; then the
# README's table of families (`python results/families/table.py`). Pass family names to run only those.
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
families=("$@")
if [ ${#families[@]} -eq 0 ]; then
  families=(gridworld tabular-mdp bandit-gaussian recsys pointrobot cartpole metamaze pendulum acrobot mountaincar asterix)
fi
for family in "${families[@]}"; do
  produce "results/families/$family" metaq protocol --devices 1 --family "$family" --train-seeds 3 \
    --out "results/families/$family"
done
python results/families/table.py
