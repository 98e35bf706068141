"""Wall time of one sharded meta-step over 1, 2, 4 simulated CPU devices: a correctness and
overhead view (simulated devices share this machine's cores, so no speed-up is expected).

Each device count runs in its own process, since XLA_FLAGS is read when JAX starts. The
parameters after the timed steps are compared with the one-device run's.

    metaq bench --scaling
"""

import json
import os
import subprocess
import sys

import numpy as np

DEVICE_COUNTS = (1, 2, 4)
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"

# Run in each child: compile, then time `repeats` meta-steps; print JSON on the last line.
CHILD = """
import json, statistics, sys, time
import jax, numpy as np
import metaq_jax as mq
from metaq_jax import distributed
from metaq_jax.training import initial_state, step_key

algo, num_tasks, num_envs, length, repeats = sys.argv[1], *map(int, sys.argv[2:6])
config = mq.MetaConfig(family="cartpole", algo=algo, num_tasks=num_tasks, num_envs=num_envs, rollout_length=length,
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


def run(devices: int, algo: str, num_tasks: int, num_envs: int, length: int, repeats: int) -> dict:
    """One device count's compile time, median meta-step time and final parameters.

    Runs `CHILD` in a fresh Python process with `devices` simulated CPU devices (XLA_FLAGS).

    Args:
      devices: simulated host devices; the mesh uses all of them.
      algo: `MetaConfig.algo` of the cartpole meta-step.
      num_tasks: T, divisible by `devices`.
      num_envs: M.
      length: L.
      repeats: timed meta-steps after the first (compiling) one.

    Returns:
      `{"compile_s", "step_s", "params"}`: seconds of compile and first step, the median step in
      seconds, and the final parameters flattened to a list.

    Raises:
      subprocess.CalledProcessError: the child process failed.
    """
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]  # the user's kept
    env = {**os.environ, "XLA_FLAGS": " ".join([*flags, f"{DEVICE_COUNT_FLAG}={devices}"])}
    argv = [algo, str(num_tasks), str(num_envs), str(length), str(repeats)]
    out = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def scaling(algo: str = "maml", num_tasks: int = 16, num_envs: int = 16, length: int = 50, repeats: int = 5,
            device_counts: tuple[int, ...] = DEVICE_COUNTS) -> list[dict]:
    """Rows per device count: devices, compile_s, step_s, ratio to one device, max |Δparams| vs one.

    Args:
      algo: `MetaConfig.algo`.
      num_tasks: T, divisible by every device count.
      num_envs: M.
      length: L.
      repeats: timed meta-steps per device count.
      device_counts: the device counts to run; the first is the reference (`vs_first`).

    Returns:
      One dict per device count with keys `devices`, `compile_s`, `step_s`, `vs_first` (step time
      over the first count's) and `max_abs_param_diff` (against the first count's parameters).
    """
    results = {n: run(n, algo, num_tasks, num_envs, length, repeats) for n in device_counts}
    base = results[device_counts[0]]
    return [{"devices": n, "compile_s": r["compile_s"], "step_s": r["step_s"],
             "vs_first": r["step_s"] / base["step_s"],
             "max_abs_param_diff": float(np.max(np.abs(np.asarray(r["params"]) - np.asarray(base["params"]))))}
            for n, r in results.items()]


def markdown(rows: list[dict]) -> str:
    """A Markdown table of `scaling`'s rows.

    Args:
      rows: as `scaling` returns them.

    Returns:
      The table, one line per row after the header, without a trailing newline.
    """
    lines = ["| devices | compile + first step (s) | meta-step (ms) | vs 1 device | max abs param diff vs 1 |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['devices']} | {r['compile_s']:.1f} | {1e3 * r['step_s']:.0f} | {r['vs_first']:.2f}× | "
              f"{r['max_abs_param_diff']:.1e} |" for r in rows]
    return "\n".join(lines)
