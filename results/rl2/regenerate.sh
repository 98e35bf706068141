#!/usr/bin/env bash
# Regenerates every results/rl2/* folder of the README's RL² tables (2 CPU cores; times in each protocol.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source results/produce.sh
# --devices N: the number of JAX devices each stored folder was trained on (1 where `metaq protocol` did so then);
# it now splits the CPU into one device per core by itself, and another split rounds differently
out=results/rl2
# the settings these tables were made with where they differ from today's defaults (the default job's)
rl2=(--outer-lr 0.001)
maml=(--gamma 0.2 --inner-lr 0.3 --outer-lr 0.001)
# RL² (GRU) on the Bernoulli bandit grid: one trial = one episode of n pulls, total reward, γ = 1, 4000 meta-steps
# (at 2000 every curve still rose). k = 50 with 128 tasks a meta-step, not 32: at 32 its curves fell back after
# meta-step 2800 at outer lr 1e-3 and stayed at 6.2 over 6000 at 5e-4 (the README)
for k in 5 10 50; do
  if [ $k = 50 ]; then tasks=128; else tasks=32; fi
  produce $out/bandit-k$k-n10 metaq protocol --devices 1 "${rl2[@]}" --family bandit-k$k-n10 --algo rl2 \
    --trial-episodes 1 --gamma 1.0 --num-tasks $tasks --num-envs 8 \
    --hidden-sizes 64 --meta-steps 4000 --train-seeds 3 --num-seeds 5 --out $out/bandit-k$k-n10
done
# random tabular MDPs (Duan et al. Table 2, n = 10): a trial of 10 episodes of 10 steps, against value iteration per episode;
# γ = 0.5 (the sweep below: γ = 0 and 0.5 learn within the trial, γ = 0.9 and 0.99 stayed flat; the README gives them),
# 6000 meta-steps with the outer lr decaying to 0 on a cosine
produce $out/tabular-mdp-n10 metaq protocol --devices 1 "${rl2[@]}" --family tabular-mdp --algo rl2 \
  --trial-episodes 10 --gamma 0.5 --num-tasks 16 --num-envs 4 \
  --hidden-sizes 64 --meta-steps 6000 --outer-schedule cosine --num-seeds 2 --out $out/tabular-mdp-n10
# the 100-pull cells. k = 5: γ = 0.9, a GRU of 64, 5000 meta-steps, 3 training seeds as one population (with γ = 1,
# 1000 meta-steps learned nothing: the README). k = 10 and 50: γ = 0.8 and a GRU of 256 (the sweep below), 3 training
# seeds on 2 devices, one member at a time (0.73 × the time of the members vmapped: benchmarks/RESULTS.md); k = 10
# 8000 meta-steps; k = 50 8000 with the outer lr decaying to 0 on a cosine (at a constant lr its curve was flat from
# meta-step 2400)
for k in 5 10 50; do
  case $k in
    5) cell=(--devices 1 --gamma 0.9 --cell-size 64 --meta-steps 5000 --train-seeds 3);;
    10) cell=(--devices 2 --member-batch 1 --gamma 0.8 --cell-size 256 --meta-steps 8000 --train-seeds 3);;
    *) cell=(--devices 2 --member-batch 1 --gamma 0.8 --cell-size 256 --meta-steps 8000 --outer-schedule cosine --train-seeds 3);;
  esac
  produce $out/bandit-k$k-n100 metaq protocol "${rl2[@]}" --family bandit-k$k-n100 --algo rl2 \
    --trial-episodes 1 "${cell[@]}" --num-tasks 16 --num-envs 4 \
    --hidden-sizes 64 --num-seeds 2 --out $out/bandit-k$k-n100
done
# the sweeps that chose those settings (seed 0, 2000 meta-steps unless told; sweep.json holds each member's held-out return)
sweep() {  # sweep NAME FLAGS...: a population into a scratch folder, then its sweep.json, sweep.png and config.json
  local name=$1 run; shift; run=$(mktemp -d)/sweep
  metaq sweep --devices 1 --algo rl2 --hidden-sizes 64 --run-dir "$run" "$@"
  mkdir -p $out/$name && cp "$run"/sweep.json "$run"/sweep.png "$run"/config.json $out/$name/
}
short=("${rl2[@]}" --num-tasks 16 --num-envs 4 --meta-steps 2000)
produce $out/sweep-bandit-k50-n100 sweep sweep-bandit-k50-n100 "${short[@]}" --family bandit-k50-n100 \
  --trial-episodes 1 --cell-size 256 --grid gamma=0.8,0.9
produce $out/sweep-tabular-mdp-n10 sweep sweep-tabular-mdp-n10 "${short[@]}" --family tabular-mdp \
  --trial-episodes 10 --grid gamma=0,0.5
# a GRU of 256 on the random MDPs: 3000 meta-steps, the outer lr decaying to 0 on a cosine (the README)
produce $out/sweep-tabular-mdp-n10-gru256 sweep sweep-tabular-mdp-n10-gru256 "${rl2[@]}" --num-tasks 16 \
  --num-envs 4 --meta-steps 3000 --outer-schedule cosine \
  --family tabular-mdp --trial-episodes 10 --cell-size 256 --grid gamma=0.5,0.8
# the 10-pull, 50-arm cell's batch: 128 tasks × 8 envs a meta-step, 4000 meta-steps, two outer lrs
produce $out/sweep-bandit-k50-n10 sweep sweep-bandit-k50-n10 --family bandit-k50-n10 --trial-episodes 1 --gamma 1.0 \
  --num-tasks 128 --num-envs 8 \
  --meta-steps 4000 --grid outer_lr=0.0005,0.001
# MAML under the trial protocol: K = 1 inner step on the trial so far every n/5 pulls; one env per task, so
# that a trial is one agent's n pulls
for n in 10 100; do
  for k in 5 10 50; do
    produce $out/maml-bandit-k$k-n$n metaq protocol --devices 1 "${maml[@]}" --family bandit-k$k-n$n --algo maml \
      --trial-episodes 1 --num-tasks 16 --num-envs 1 \
      --rollout-length $n --inner-steps 1 --adapt-every $((n / 5)) --hidden-sizes 64 --meta-steps 300 \
      --train-seeds 3 --num-seeds 2 --out $out/maml-bandit-k$k-n$n
  done
done
# SNAIL-style attention (causal convolutions + attention over the trial) on the 10-pull cells, 3 training seeds
for k in 5 10 50; do
  produce $out/attention-bandit-k$k-n10 metaq protocol --devices 1 "${rl2[@]}" --family bandit-k$k-n10 --algo rl2 \
    --network attention --trial-episodes 1 --gamma 1.0 \
    --num-tasks 32 --num-envs 8 --hidden-sizes 64 --meta-steps 2000 --train-seeds 3 --num-seeds 5 \
    --out $out/attention-bandit-k$k-n10
done
# and on the 100-pull cells, with the GRU cell's (100, 5) γ = 0.9 and half its meta-steps, 3 seeds as one population
# on 2 devices (0.85 s a meta-step for the three, 1.26 s on one device; benchmarks/RESULTS.md), their test 100 tasks
# at a time (all 1000 at once asked for 55 GB)
for k in 5 10 50; do
  produce $out/attention-bandit-k$k-n100 metaq protocol --devices 2 "${rl2[@]}" --family bandit-k$k-n100 --algo rl2 \
    --network attention --trial-episodes 1 \
    --gamma 0.9 --num-tasks 16 --num-envs 4 --hidden-sizes 64 --meta-steps 2500 --train-seeds 3 --num-seeds 2 \
    --test-batch 100 --out $out/attention-bandit-k$k-n100
done
# and on the random MDPs: the GRU's settings above, 4000 meta-steps, 3 training seeds as one population
produce $out/attention-tabular-mdp-n10 metaq protocol --devices 1 "${rl2[@]}" --family tabular-mdp --algo rl2 \
  --network attention --trial-episodes 10 --gamma 0.5 \
  --num-tasks 16 --num-envs 4 --hidden-sizes 64 --meta-steps 4000 --outer-schedule cosine --train-seeds 3 --num-seeds 2 \
  --out $out/attention-tabular-mdp-n10
# the same with a torso of 128 units
produce $out/attention128-tabular-mdp-n10 metaq protocol --devices 1 "${rl2[@]}" --family tabular-mdp --algo rl2 \
  --network attention --trial-episodes 10 --gamma 0.5 \
  --num-tasks 16 --num-envs 4 --hidden-sizes 128 --meta-steps 4000 --outer-schedule cosine --train-seeds 3 --num-seeds 2 \
  --out $out/attention128-tabular-mdp-n10
# MetaMaze: a trial of 2 episodes of 200 steps; rl2 and MAML
produce $out/metamaze-rl2 metaq protocol --devices 1 "${rl2[@]}" --family metamaze --algo rl2 --trial-episodes 2 \
  --gamma 0.99 --num-tasks 16 --num-envs 2 \
  --hidden-sizes 64 --meta-steps 300 --train-seeds 3 --out $out/metamaze-rl2
produce $out/metamaze-maml metaq protocol --devices 1 --inner-lr 0.3 --outer-lr 0.001 --family metamaze --algo maml \
  --trial-episodes 2 --gamma 0.99 --num-tasks 16 --num-envs 2 \
  --rollout-length 200 --inner-steps 1 --hidden-sizes 64 --meta-steps 300 --train-seeds 3 --out $out/metamaze-maml
# pearl on the 10-pull cells: results/latent's budget (8 tasks × 2 envs per meta-step, 16 TD steps, 600
# meta-steps, outer lr 3e-3), replays of 2,000 and batches of 128; a trial is one episode, γ = 1.
latent=(--trial-episodes 1 --gamma 1.0 --num-tasks 8 --num-envs 2 --gradient-steps 16 --meta-steps 600 --outer-lr 3e-3
        --task-pool 40 --replay-size 2000 --batch-size 128 --train-seeds 3 --num-seeds 5)
for k in 5 10 50; do
  produce $out/pearl-bandit-k$k-n10 metaq protocol --devices 1 --family bandit-k$k-n10 --algo pearl "${latent[@]}" \
    --context-size 64 --kl-weight 0.01 \
    --out $out/pearl-bandit-k$k-n10
done
# pearl on the 100-pull cells: the same budget with γ = 0.9 (as rl2's (100, 5) cell: with γ = 1 rl2 learned nothing
# there) and replays of 20,000 (200 episodes, as 2,000 holds at 10 pulls)
for k in 5 10 50; do
  produce $out/pearl-bandit-k$k-n100 metaq protocol --devices 1 --family bandit-k$k-n100 --algo pearl \
    --trial-episodes 1 --gamma 0.9 --num-tasks 8 --num-envs 2 \
    --gradient-steps 16 --meta-steps 600 --outer-lr 3e-3 --task-pool 40 --replay-size 20000 --batch-size 128 \
    --train-seeds 3 --num-seeds 5 --context-size 64 --kl-weight 0.01 --out $out/pearl-bandit-k$k-n100
done
# mql on the 10-pull cells with pearl's budget there: its meta-test of 3 seeds × 5 trials × 1000 tasks in one program asked for
# 46 GB, so 50 tasks at a time (--test-batch)
for k in 5 10 50; do
  produce $out/mql-bandit-k$k-n10 metaq protocol --devices 1 --family bandit-k$k-n10 --algo mql "${latent[@]}" \
    --test-batch 50 --out $out/mql-bandit-k$k-n10
done
# mql on the 100-pull cells: pearl's 100-pull budget (γ = 0.9, replays of 20,000); most of each cell's time is
# its meta-test ((100, 5): 47 minutes in all here)
for k in 5 10 50; do
  produce $out/mql-bandit-k$k-n100 metaq protocol --devices 1 --family bandit-k$k-n100 --algo mql --trial-episodes 1 \
    --gamma 0.9 --num-tasks 8 --num-envs 2 --gradient-steps 16 --meta-steps 600 --outer-lr 3e-3 --task-pool 40 \
    --replay-size 20000 --batch-size 128 --train-seeds 3 --num-seeds 5 --test-batch 50 --out $out/mql-bandit-k$k-n100
done
python results/rl2/table.py   # the README tables
