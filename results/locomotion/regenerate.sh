#!/usr/bin/env bash
# Regenerates results/locomotion/*: the meta-test protocol on the brax locomotion families (needs
# `pip install -e '.[brax]'`; 2 CPU cores; times in each protocol.md).
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
out=results/locomotion
# RL² over TD3 on cheetah-dir: trials of 2 episodes, 4 tasks × 2 envs, 500 meta-steps, 3 training seeds
# in one program, beside pretrain + fine-tune and random init under the same budget
produce $out/cheetah-dir-rl2 metaq protocol --devices 1 --family cheetah-dir --algo rl2 --train-seeds 3 \
  --meta-steps 500 --num-tasks 4 --num-envs 2 \
  --trial-episodes 2 --gamma 0.99 --outer-lr 0.001 --hidden-sizes 64 64 --out $out/cheetah-dir-rl2
