"""Wall time of one sharded meta-step over 1, 2, 4 simulated CPU devices: a correctness and
overhead view (simulated devices share this machine's cores, so no speed-up is expected).

Each device count runs in its own process, since XLA_FLAGS is read when JAX starts. The
parameters after the timed steps are compared with the one-device run's.

    python -m benchmarks.scaling [--algo maml] [--num-tasks 16] [--repeats 5]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

DEVICE_COUNTS = (1, 2, 4)

# Run in each child: compile, then time `repeats` meta-steps; print JSON on the last line.
CHILD = """
import json, statistics, sys, time
import jax, numpy as np
import metaq_jax as mq
from metaq_jax import distributed
from metaq_jax.train import initial_state, step_key

algo, num_tasks, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = mq.MetaConfig(family="cartpole", algo=algo, num_tasks=num_tasks, num_envs=16, rollout_length=50,
                       inner_steps=2, inner_lr=0.01, gamma=0.99, hidden_sizes=(64, 64))
learner = mq.make_meta_learner(config)
mesh = distributed.make_mesh()
update = distributed.shard_update(learner.update, mesh, num_tasks)
state, run_key = distributed.replicate(initial_state(learner, 0), mesh)
start = time.perf_counter()
state, _ = jax.block_until_ready(update(state, step_key(run_key, 0)))
compile_s = time.perf_counter() - start
times = []
for step in range(1, repeats + 1):
    start = time.perf_counter()
    state, _ = jax.block_until_ready(update(state, step_key(run_key, step)))
    times.append(time.perf_counter() - start)
params = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(state.params))])
print(json.dumps({"compile_s": compile_s, "step_s": statistics.median(times), "params": params.tolist()}))
"""


def run(devices: int, algo: str, num_tasks: int, repeats: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, "-c", CHILD, algo, str(num_tasks), str(repeats)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="maml", choices=("maml", "fomaml", "reptile"))
    parser.add_argument("--num-tasks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = {n: run(n, args.algo, args.num_tasks, args.repeats) for n in DEVICE_COUNTS}
    base = np.asarray(results[1]["params"])
    print(f"{args.algo}, {args.num_tasks} tasks × 16 envs × 50 steps on cartpole, K=2, "
          f"{args.repeats} timed meta-steps after the first\n")
    print("| devices | compile + first step (s) | meta-step (ms) | vs 1 device | max abs param diff vs 1 |")
    print("|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        diff = float(np.max(np.abs(np.asarray(r["params"]) - base)))
        print(f"| {n} | {r['compile_s']:.1f} | {1e3 * r['step_s']:.0f} | "
              f"{r['step_s'] / results[1]['step_s']:.2f}× | {diff:.1e} |")


if __name__ == "__main__":
    main()
