#!/usr/bin/env bash
# Regenerates every results/rl2/* folder of the README's RL² tables (2 CPU cores; times in each protocol.md).
set -euo pipefail
out=results/rl2
# RL² (GRU) on the Bernoulli bandit grid: one trial = one episode of n pulls, total reward, γ = 1.
for k in 5 10 50; do
  metaq protocol --family bandit-k$k-n10 --algo rl2 --trial-episodes 1 --gamma 1.0 --num-tasks 32 --num-envs 8 \
    --hidden-sizes 64 --meta-steps 2000 --train-seeds 3 --num-seeds 5 --out $out/bandit-k$k-n10
done
# random tabular MDPs: a trial of 10 episodes of 10 steps, against value iteration per episode
metaq protocol --family tabular-mdp --algo rl2 --trial-episodes 10 --gamma 0.99 --num-tasks 16 --num-envs 4 \
  --hidden-sizes 64 --meta-steps 1500 --train-seeds 2 --num-seeds 2 --out $out/tabular-mdp-n10
for k in 5 10 50; do
  metaq protocol --family bandit-k$k-n100 --algo rl2 --trial-episodes 1 --gamma 1.0 --num-tasks 16 --num-envs 4 \
    --hidden-sizes 64 --meta-steps 1500 --train-seeds 2 --num-seeds 2 --out $out/bandit-k$k-n100
done
# MAML under the trial protocol (adapting within the episode), the same cells
for n in 10 100; do
  for k in 5 10 50; do
    metaq protocol --family bandit-k$k-n$n --algo maml --trial-episodes 1 --num-tasks 16 --num-envs 4 \
      --rollout-length $n --inner-steps 1 --adapt-every $((n / 5)) --hidden-sizes 64 --meta-steps 500 \
      --num-seeds 2 --out $out/maml-bandit-k$k-n$n
  done
done
# SNAIL-style attention on the 10-pull cells
for k in 5 10 50; do
  metaq protocol --family bandit-k$k-n10 --algo rl2 --network attention --trial-episodes 1 --gamma 1.0 \
    --num-tasks 32 --num-envs 8 --hidden-sizes 64 --meta-steps 2000 --num-seeds 5 --out $out/attention-bandit-k$k-n10
done
# MetaMaze: a trial of 2 episodes of 200 steps; rl2 and MAML
metaq protocol --family metamaze --algo rl2 --trial-episodes 2 --gamma 0.99 --num-tasks 16 --num-envs 2 \
  --hidden-sizes 64 --meta-steps 500 --out $out/metamaze-rl2
metaq protocol --family metamaze --algo maml --trial-episodes 2 --gamma 0.99 --num-tasks 16 --num-envs 2 \
  --rollout-length 200 --inner-steps 1 --hidden-sizes 64 --meta-steps 500 --out $out/metamaze-maml
