"""Wall time of one meta-step, and its compile time, for each algorithm.

Workload W: T tasks × 32 envs × 50 collection steps on `cartpole`, K = 5 inner SGD steps,
a 4-64-64-2 MLP, Adam outer. Compile time is reported apart; run time is the median of
`--repeats` steps, the algorithms interleaved so they share the machine's noise.

    python -m benchmarks.meta_step [--num-tasks 64] [--repeats 7]
"""

import argparse
import json
import platform
import statistics
import time

import jax

import metaq_jax as mq

ALGOS = ("maml", "fomaml", "reptile")


def workload(algo: str, num_tasks: int, inner_steps: int) -> mq.MetaConfig:
    return mq.MetaConfig(family="cartpole", algo=algo, num_tasks=num_tasks, num_envs=32,
                         rollout_length=50, inner_steps=inner_steps, inner_lr=0.01, gamma=0.99,
                         hidden_sizes=(64, 64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-tasks", type=int, default=64)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    steps, states, times, compile_s = {}, {}, {a: [] for a in ALGOS}, {}
    for algo in ALGOS:
        learner = mq.make_meta_learner(workload(algo, args.num_tasks, args.inner_steps))
        state = learner.init(jax.random.key(0))
        start = time.perf_counter()
        steps[algo] = jax.jit(learner.update).lower(state, jax.random.key(1)).compile()
        compile_s[algo] = time.perf_counter() - start
        states[algo] = state
    for i in range(args.repeats + 1):  # the first round warms up
        for algo in ALGOS:
            start = time.perf_counter()
            states[algo], metrics = steps[algo](states[algo], jax.random.key(i))
            jax.block_until_ready(metrics)
            if i:
                times[algo].append(time.perf_counter() - start)
    env_steps = 2 * args.num_tasks * 32 * 50
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "num_tasks": args.num_tasks,
        "inner_steps": args.inner_steps,
        "algos": {a: {"compile_s": round(compile_s[a], 2),
                      "step_s_median": round(statistics.median(times[a]), 4),
                      "step_s_range": [round(min(times[a]), 4), round(max(times[a]), 4)],
                      "env_steps_per_s": round(env_steps / statistics.median(times[a]))}
                  for a in ALGOS},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
