"""Throughput of the brax locomotion families: env steps per second of a jitted, vmapped rollout,
and every learner's meta-steps per second on one of them.

Each family and backend rolls out M environments of one task for L steps with uniform random
actions through the family's own environment (auto-reset, the task's reward), as metaq_jax's
collectors step it. Each learner (over TD3: the action space is continuous) takes its meta-step
through its `MetaLearner` alone, as the suite's learners' table does. Compile time is reported
apart, run time as the median over interleaved rounds.

    metaq bench --locomotion           (beside the suite)
    python -m metaq_jax.bench.locomotion  (alone)
"""

import itertools

import jax

from metaq_jax.bench import suite
from metaq_jax.bench.measure import compile_timed, interleaved, spread
from metaq_jax.config import KINDS, MetaConfig
from metaq_jax.tasks import make_family

FAMILIES = ("cheetah-vel", "cheetah-dir", "ant-dir", "ant-goal")
BACKENDS = ("spring",)
LEARNERS = ("maml", "fomaml", "reptile", "pretrain", "rl2 gru", "pearl", "mql")
"""The suite's learners (`suite.LEARNERS`) with a continuous-action version."""


def random_rollout(env, task, num_envs: int, length: int):
    """`run(key) -> rewards [L, M]`: L auto-resetting steps of M envs of `task`, actions ~ U[−1, 1]ᴬ.

    Args:
      env: the family's environment.
      task: one task's environment parameters.
      num_envs: M.
      length: L.

    Returns:
      `run`, a function of a key (to be jitted by the caller).
    """
    size = env.action_space(task).shape[0]

    def run(key):
        k_reset, k_steps = jax.random.split(key)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), task)

        def step(state, k):
            k_act, k_env = jax.random.split(k)
            actions = jax.random.uniform(k_act, (num_envs, size), minval=-1.0, maxval=1.0)
            _, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_envs), state, actions, task)
            return state, reward

        return jax.lax.scan(step, state, jax.random.split(k_steps, length))[1]

    return run


def locomotion_rows(families: tuple[str, ...] = FAMILIES, backends: tuple[str, ...] = BACKENDS, *,
                    num_envs: int = 64, length: int = 100, rounds: int = 5) -> list[dict]:
    """Per family and backend: compile seconds, rollout seconds and env steps per second.

    Args:
      families: locomotion family names.
      backends: brax backends.
      num_envs: M.
      length: L.
      rounds: timed rounds, interleaved over every (family, backend).

    Returns:
      Rows `{"family", "backend", "num_envs", "length", "compile_s", "rollout_s" (median, min,
      max, n), "env_steps_per_s"}` (the median's).
    """
    key = jax.random.key(0)
    runs, rows = {}, []
    for family_name, backend in itertools.product(families, backends):
        family = make_family(family_name, backend=backend)
        task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
        compiled, compile_s = compile_timed(random_rollout(family.env, task, num_envs, length), key)
        runs[(family_name, backend)] = lambda compiled=compiled: compiled(key)
        rows.append({"family": family_name, "backend": backend, "num_envs": num_envs, "length": length,
                     "compile_s": compile_s})
    times = interleaved({f"{f}/{b}": fn for (f, b), fn in runs.items()}, rounds)
    for row in rows:
        row["rollout_s"] = spread(times[f"{row['family']}/{row['backend']}"])
        row["env_steps_per_s"] = num_envs * length / row["rollout_s"]["median"]
    return rows


def learner_workload(family: str, name: str, num_tasks: int, num_envs: int) -> MetaConfig:
    """One learner's locomotion workload: T tasks × M envs of `family`, a 64-64 actor and critics.

    Gradient learners collect one episode each of support and query and take K = 1 inner step
    (lr 0.01); memory learners one 1-episode trial per task; pearl and mql collect one episode per
    task and take one TD step on 64 replayed transitions of each (a pool of max(8, T) tasks).

    Args:
      family: a continuous-action family's name.
      name: a key of `suite.LEARNERS`.
      num_tasks: T.
      num_envs: M.

    Returns:
      The config.
    """
    changes = suite.LEARNERS[name]
    kind = KINDS[changes.get("algo", MetaConfig.algo)]
    base = dict(family=family, num_tasks=num_tasks, num_envs=num_envs, trial_episodes=1, hidden_sizes=(64, 64))
    if kind == "gradient":
        base.update(rollout_length=make_family(family).episode_length, inner_steps=1, inner_lr=0.01)
    if kind == "latent":
        base.update(task_pool=max(8, num_tasks))
    return MetaConfig(**{**base, **changes})


def learner_rows(family: str = "cheetah-vel", learners: tuple[str, ...] = LEARNERS, *, num_tasks: int = 4,
                 num_envs: int = 2, rounds: int = 3) -> dict[str, dict]:
    """Each learner's meta-step on `family` (`learner_workload`): compile s, meta-steps/s, env steps/s.

    Args:
      family: a continuous-action family's name.
      learners: keys of `suite.LEARNERS`.
      num_tasks: T.
      num_envs: M.
      rounds: timed rounds, interleaved over the learners.

    Returns:
      `suite.learners_table`'s rows, each with `meta_steps_per_s` (the median's) and `family`.
    """
    rows = suite.learners_table(learners, num_tasks, num_envs, rounds,
                                workload=lambda name, t, m: learner_workload(family, name, t, m))
    for row in rows.values():
        row.update(family=family, meta_steps_per_s=1.0 / row["step_s"]["median"])
    return rows


def learners_markdown(rows: dict[str, dict]) -> str:
    """`learner_rows` as a markdown table, one row per learner.

    Args:
      rows: `learner_rows`' dict, `learner -> row`.

    Returns:
      The table's text.
    """
    lines = ["| learner | kind | family | meta-step ms (median [range]) | meta-steps/s | env steps/s | compile s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, row in rows.items():
        t = row["step_s"]
        lines.append(f"| {name} | {row['kind']} | {row['family']} | {1e3 * t['median']:.0f} "
                     f"[{1e3 * t['min']:.0f}–{1e3 * t['max']:.0f}] | "
                     f"{row['meta_steps_per_s']:.2f} | "
                     f"{row['env_steps_per_s']:,.0f} | {row['compile_s']:.1f} |")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table.

    Args:
      rows: `locomotion_rows`' list.

    Returns:
      One row per family and backend.
    """
    lines = ["| family | backend | envs × steps | compile s | rollout ms (median [range]) | env steps/s |",
             "|---|---|---|---:|---:|---:|"]
    for row in rows:
        t = row["rollout_s"]
        lines.append(f"| {row['family']} | {row['backend']} | {row['num_envs']} × {row['length']} | "
                     f"{row['compile_s']:.1f} | {1e3 * t['median']:.0f} [{1e3 * t['min']:.0f}–{1e3 * t['max']:.0f}] | "
                     f"{row['env_steps_per_s']:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m metaq_jax.bench.locomotion
    from metaq_jax.bench import report

    print(report.machine_line(suite.machine()))
    print(markdown(locomotion_rows()))
    print()
    print(learners_markdown(learner_rows()))
