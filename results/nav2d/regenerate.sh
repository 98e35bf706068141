#!/usr/bin/env bash
# Regenerates results/nav2d (the README's nav2d table against the MAML paper), 5 training seeds on
# one JAX device, as it was made (about 2 hours on 2 cores; `--resume` continues a killed run). The outer lr and Meta-SGD's rate lr decay on a cosine and the meta-gradient's norm is
# clipped to 0.1 (≈5× its median): at a constant lr its norm spiked to 10^8 and 3 of 5 seeds
# collapsed within 6000 meta-steps. Then two sweeps of the outer lr (2 seeds × 3 lrs, 6 members as one
# population): results/nav2d/sweep16 at the run's own settings (about 100 minutes), and results/nav2d/sweep
# at the default job's 4 environments per task, a constant lr and no clipping (about 10 minutes).
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
produce results/nav2d metaq protocol --devices 1 --family nav2d --meta-sgd --step-losses \
  --gamma 0.0 --inner-steps 3 --inner-lr 0.1 --num-envs 16 --rollout-length 100 --outer-lr 0.005 \
  --meta-sgd-lr 0.03 --outer-schedule cosine --max-grad-norm 0.1 --meta-steps 6000 --train-seeds 5 \
  --out results/nav2d
sweep() {  # sweep NAME FLAGS...: a population on 2 devices into a scratch folder, then its sweep.json, sweep.png and config.json
  local name=$1 run; shift; run=$(mktemp -d)/sweep
  XLA_FLAGS=--xla_force_host_platform_device_count=2 metaq sweep --family nav2d --skip-nonfinite --run-dir "$run" "$@"
  mkdir -p "results/nav2d/$name" && cp "$run"/sweep.json "$run"/sweep.png "$run"/config.json "results/nav2d/$name/"
}
produce results/nav2d/sweep16 sweep sweep16 --meta-sgd --step-losses --gamma 0.0 --inner-steps 3 --inner-lr 0.1 \
  --num-envs 16 --rollout-length 100 --meta-sgd-lr 0.03 --outer-schedule cosine --max-grad-norm 0.1 --meta-steps 6000 \
  --seeds 2 --grid outer_lr=0.003,0.005,0.008
produce results/nav2d/sweep sweep sweep --seeds 2 --outer-schedule constant --max-grad-norm 0 \
  --grid outer_lr=0.003,0.005,0.008 --meta-steps 3000
