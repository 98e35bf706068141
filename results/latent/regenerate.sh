#!/usr/bin/env bash
# The latent-context learners (pearl, mql) on nav2d, pointrobot, cartpole and pendulum over 3 training
# seeds, beside the stored maml runs (results/nav2d, results/families/*); then each learner's meta-step
# time (`python results/latent/timing.py`, timing.json), the README's comparison table and the
# sample-efficiency plot (`python results/latent/table.py`). Pass family names to run only those.
# On this 2-core CPU, the two families side by side: nav2d 26 min (pearl 638 s, mql 905 s),
# pointrobot 36 min (973 s, 1211 s); with the support protocol added, beside two other runs: nav2d mql
# 1041 s, pointrobot pearl 1023 s, mql 1841 s (each protocol.json's train_s has its training alone);
# cartpole's two side by side: pearl 1419 s, mql 1932 s; pendulum's beside them and test runs: pearl 1395 s, mql 2141 s.
# nav2d pearl at 3000 meta-steps, beside another run: 950 s; pointrobot pearl (1400 × 32 TD steps), beside another run: 1478 s.
set -euo pipefail
# --devices 1: the stored folders were trained on one JAX device, as `metaq protocol` did then; it now splits
# the CPU into one device per core by itself, which rounds differently (`--devices N` or XLA_FLAGS choose)
cd "$(dirname "$0")/../.."
source results/produce.sh
families=("$@")
if [ ${#families[@]} -eq 0 ]; then
  families=(nav2d pointrobot cartpole pendulum)
fi
# Both learners: 8 tasks × 2 envs × one episode length of steps (100; cartpole 500, pendulum 200) per
# meta-step, 16 TD steps, 600 meta-steps (0.96M env steps per run on nav2d); nav2d's gamma as its maml run's.
# pearl on nav2d: 3000 meta-steps (4.8M env steps), where its posterior helps; at 600 it did not (the README).
# pearl on pointrobot: γ = 0.99 (the sparse reward, 1 per step near the goal, gives a γ = 0 Q-learner
# nothing to learn from away from it), the outer lr decaying on a cosine, 1400 meta-steps of 32 TD steps
# (2.24M env steps, under 1/10 of maml's)
common=(--train-seeds 3 --trial-episodes 2 --num-tasks 8 --num-envs 2 --outer-lr 3e-3)
for family in "${families[@]}"; do
  extra=()
  pearl_extra=(--gradient-steps 16)
  pearl_steps=600
  if [ "$family" = nav2d ]; then extra=(--gamma 0); pearl_steps=3000; fi
  if [ "$family" = pointrobot ]; then pearl_extra=(--gradient-steps 32 --gamma 0.99 --outer-schedule cosine); pearl_steps=1400; fi
  # the families' default γ = 0 (their maml runs') leaves a Q-learner only the next reward: cartpole's
  # is 1 whatever it does. These two take γ = 0.99, the learned oracle's other discount, which balancing and swinging need
  if [ "$family" = cartpole ] || [ "$family" = pendulum ]; then extra=(--gamma 0.99); fi
  produce "results/latent/$family-pearl" metaq protocol --devices 1 --family "$family" --algo pearl "${common[@]}" \
    --meta-steps $pearl_steps "${extra[@]}" "${pearl_extra[@]}" --task-pool 40 \
    --replay-size 20000 --batch-size 256 --context-size 64 --kl-weight 0.01 --out "results/latent/$family-pearl"
  produce "results/latent/$family-mql" metaq protocol --devices 1 --family "$family" --algo mql "${common[@]}" \
    --meta-steps 600 --gradient-steps 16 "${extra[@]}" --task-pool 40 \
    --replay-size 20000 --batch-size 128 --latent-size 16 --adapt-lr 0.001 --out "results/latent/$family-mql"
done
produce results/latent/timing.json python results/latent/timing.py 7
python results/latent/table.py
