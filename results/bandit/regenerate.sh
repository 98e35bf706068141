#!/usr/bin/env bash
# Regenerates results/bandit (the README's bandit table): MAML beside every baseline, 3 training seeds.
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
produce results/bandit metaq protocol --devices 1 --family bandit --inner-steps 1 --inner-lr 0.3 --gamma 0.2 \
  --num-envs 4 --rollout-length 100 \
  --outer-lr 0.001 --meta-steps 500 --num-seeds 5 --train-seeds 3 --out results/bandit
