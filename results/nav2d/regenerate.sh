#!/usr/bin/env bash
# Regenerates results/nav2d (the README's nav2d table against the MAML paper), 3 training seeds,
# the CPU split into one JAX device per core.
set -euo pipefail
XLA_FLAGS=--xla_force_host_platform_device_count=2 metaq protocol --family nav2d --meta-sgd --step-losses \
  --gamma 0.0 --inner-steps 3 --inner-lr 0.1 --num-envs 16 --rollout-length 100 --outer-lr 0.005 \
  --meta-sgd-lr 0.03 --meta-steps 4000 --train-seeds 3 --out results/nav2d
