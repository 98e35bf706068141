"""A population of P members as one program against the same P members run one after another.

Both sides run the same workload on one device of this process, interleaved round by round.
The population compiles once for any P; P separate runs (each with its own hyperparameter
values, as P `metaq train` processes would) compile one program each: their compile time and
meta-step time are P × those of a single member, measured on two members and averaged.

    metaq bench --population
"""

import statistics
import time

import jax

import metaq_jax as mq
from metaq_jax import population
from metaq_jax.training import initial_state, step_key

SIZES = (1, 4, 16, 64)
WORKLOAD = dict(family="nav2d", algo="maml", num_tasks=4, num_envs=4, rollout_length=20, hidden_sizes=(32, 32),
                inner_steps=1)
VARIED = ("inner_lr", (0.1, 0.2, 0.3, 0.4))
"""The field the members vary and its 4 values (a memory learner refuses `inner_lr`: vary `gamma`)."""


def members_of(size: int, varied: tuple[str, tuple[float, ...]] = VARIED) -> list[dict]:
    """P members: P/4 seeds × the 4 values of a field (one member for P = 1).

    Args:
      size: P, 1 or a multiple of 4.
      varied: `(field, its 4 values)`.

    Returns:
      The members, `{"seed": s, field: value}` each.
    """
    field, values = varied
    if size == 1:
        return [{"seed": 0, field: values[0]}]
    return population.grid_members(range(size // len(values)), {field: list(values)})


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def population_rows(sizes: tuple[int, ...] = SIZES, rounds: int = 5, steps: int = 10, workload: dict = WORKLOAD,
                    varied: tuple[str, tuple[float, ...]] = VARIED) -> list[dict]:
    """Per P: compile and meta-step seconds of the population and of P separate runs.

    Args:
      sizes: the population sizes P (1, or multiples of 4).
      rounds: timed rounds per side, interleaved; each round times `steps` meta-steps.
      steps: meta-steps per round.
      workload: the `MetaConfig` fields every member shares.
      varied: the field the members vary, and its 4 values (`members_of`).

    Returns:
      Rows `{"members", "population_compile_s", "population_step_s", "separate_compile_s",
      "separate_step_s", "speedup"}`: medians over rounds of the seconds per meta-step of all
      P members, and the separate runs' time over the population's.
    """
    config, rows = mq.MetaConfig(**workload), []
    family = mq.make_family(config.family)
    singles = []  # a separate run: its own program, as a process of its own compiles
    for member in members_of(4, varied)[:2]:
        learner = mq.make_meta_learner(population.member_config(config, member), family)
        state, run_key = initial_state(learner, member["seed"])
        start = time.perf_counter()
        update = jax.jit(learner.update).lower(state, run_key).compile()
        singles.append({"update": update, "state": state, "run_key": run_key,
                        "compile_s": time.perf_counter() - start})
    for size in sizes:
        pop = population.make_population(config, family, members_of(size, varied))
        value = pop.init()
        start = time.perf_counter()
        update = jax.jit(pop.update).lower(value).compile()
        compile_s = time.perf_counter() - start
        pop_times, one_times = [], []
        for _ in range(rounds):
            (value, _), seconds = _timed(lambda v: _steps(update, v, steps), value)
            pop_times.append(seconds / steps)
            total = 0.0
            for one in singles:
                (one["state"], _), seconds = _timed(
                    lambda s: _single_steps(one["update"], s, one["run_key"], steps), one["state"])
                total += seconds / steps
            one_times.append(total / len(singles))
        one_compile = statistics.mean(one["compile_s"] for one in singles)
        pop_step, one_step = statistics.median(pop_times), statistics.median(one_times)
        rows.append({"members": size, "population_compile_s": compile_s, "population_step_s": pop_step,
                     "separate_compile_s": size * one_compile, "separate_step_s": size * one_step,
                     "speedup": size * one_step / pop_step})
    return rows


def _steps(update, value, steps):
    for _ in range(steps):
        value, metrics = update(value)
    return value, metrics


def _single_steps(update, state, run_key, steps):
    for _ in range(steps):
        state, metrics = update(state, step_key(run_key, state.step))
    return state, metrics


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table.

    Args:
      rows: `population_rows`' list.

    Returns:
      One row per P: compile seconds and milliseconds per meta-step of all members, population vs
      separate runs, and the speed-up.
    """
    lines = ["| members P | population: compile s | population: ms per meta-step (all P) | P separate runs: "
             "compile s | P separate runs: ms per meta-step | speed-up |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['members']} | {r['population_compile_s']:.1f} | {1e3 * r['population_step_s']:.1f} | "
                     f"{r['separate_compile_s']:.1f} | {1e3 * r['separate_step_s']:.1f} | {r['speedup']:.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m metaq_jax.bench.population
    from metaq_jax.bench import report, suite

    print(report.machine_line(suite.machine()))
    print(markdown(population_rows()))
