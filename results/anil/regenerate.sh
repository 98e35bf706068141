#!/usr/bin/env bash
# ANIL (`--adapt head`: only the Q-network's output layer adapts in the inner loop) beside MAML's
# stored runs of the same protocols, 3 training seeds each: `cartpole` at the family's defaults
# (MAML: results/families/cartpole) and `nav2d` with results/nav2d's flags (MAML: results/nav2d,
# on one JAX device as there); then one meta-step of each timed
# (results/anil/timing.py) and the README's tables (results/anil/table.py).
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
produce results/anil/cartpole metaq protocol --devices 1 --family cartpole --adapt head --train-seeds 3 \
  --out results/anil/cartpole
produce results/anil/nav2d metaq protocol --devices 1 --family nav2d --adapt head --meta-sgd --step-losses \
  --gamma 0.0 --inner-steps 3 --inner-lr 0.1 --num-envs 16 --rollout-length 100 --outer-lr 0.005 \
  --meta-sgd-lr 0.03 --outer-schedule cosine --max-grad-norm 0.1 --meta-steps 6000 --train-seeds 3 --out results/anil/nav2d
produce results/anil/timing.json python results/anil/timing.py
python results/anil/table.py
