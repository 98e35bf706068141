"""Meta-test on held-out tasks, with 95% confidence intervals, under two protocols.

- `trial` (every kind): E episodes on one fixed task while the learner adapts as its kind does;
  the return of episode 1..E and the trial's total.
- `inner_steps` (gradient kind, MAML's protocol): the return after 0..K inner steps on a support
  batch.
- `support` (latent kind, MAML's protocol for a learner that adapts once): the return before and
  after adapting on a support batch (pearl: z from its posterior; mql: its adaptation); a
  pretraining baseline's row is its inner-steps curve before and after its K fine-tuning steps.

A report holds one section per protocol the learner has: `{"x", "points", "tasks", "rows"}`, each
row over the points (and, in a trial, the same keys prefixed `total_` for each trial's sum):
  scores              every trial's return, `[R][T][P]`: R runs (trials per task, and training
                      seeds when pooled) of each of T held-out tasks;
  mean, ci95          the mean and its normal 95% interval's half-width;
  mean_ci, iqm, iqm_ci  the mean's and the interquartile mean's stratified bootstrap 95% intervals
                      (`metaq_jax.stats`, by rliable), each `[lower, upper]`;
  improvement         in a baseline's row, P(meta-learned > this row) per point with its interval
                      (`{"poi", "poi_ci"}`, and in a trial `total_poi`, `total_poi_ci`).
"""

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from metaq_jax import stats
from metaq_jax.algos.base import MetaLearner
from metaq_jax.distributed import place
from metaq_jax.errors import InputError
from metaq_jax.types import EnvParams, MetaState, Params

PROTOCOLS = {"trial": "episode", "inner_steps": "inner steps", "support": "support batches"}
"""Each protocol's x-axis: the episodes of a trial, the inner steps taken, or the support batches adapted on."""
LEARNED = "meta-learned"
"""The row of the learner under test; the other rows are baselines."""
RANDOM_INIT_SEED = 12345
"""Seeds the random initialisation every report compares against."""


class Curve(NamedTuple):
    """Returns at P points (inner steps, or episodes of a trial) over N = tasks × seeds trials.

    Attributes:
      mean: `[P]` mean return at each point.
      ci95: `[P]` half-width of the normal 95% interval of the mean (0 when N = 1).
      returns: `[N, P]` every trial's returns.
    """

    mean: chex.Array  # [P]
    ci95: chex.Array  # [P] half-width of the normal 95% interval of the mean
    returns: chex.Array  # [N, P]


def _batched(fn, test_batch: int = 0):
    """`fn(x, task, key) -> [P]` jitted over `[T]` tasks and `[S, T]` keys: `(x, tasks, keys) -> [S, T, P]`.

    `x` (a state, or parameters) is an argument, not a constant of the program, so every starting
    point of the same shapes runs the same compiled program. `test_batch` > 0 runs that many
    tasks (each with its S trials) at once and the rest in sequence (`lax.map`), to bound memory;
    0 runs all T at once."""
    if not test_batch:
        return jax.jit(jax.vmap(jax.vmap(fn, in_axes=(None, 0, 0)), in_axes=(None, None, 0)))
    over_seeds = jax.vmap(fn, in_axes=(None, None, 0))  # one task, [S] keys -> [S, P]

    def chunked(x, tasks, keys):
        per_task = jax.lax.map(lambda tk: over_seeds(x, *tk), (tasks, jnp.swapaxes(keys, 0, 1)),
                               batch_size=test_batch)  # [T, S, P]
        return jnp.swapaxes(per_task, 0, 1)

    return jax.jit(chunked)


def memory_budget() -> int | None:
    """Bytes a test may take: this process's first device's free memory (an accelerator reports it),
    else the host's available memory (Linux's MemAvailable, on a CPU); None where neither is known."""
    stats = jax.local_devices()[0].memory_stats()
    if stats and "bytes_limit" in stats:
        return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    try:
        with open("/proc/meminfo") as f:
            found = [line.split()[1] for line in f if line.startswith("MemAvailable:")]
    except OSError:
        return None
    return int(found[0]) * 1024 if found else None


def _needs(compiled: jax.stages.Compiled) -> int:
    """The bytes a compiled program allocates as it runs (its temporaries and outputs), by XLA's analysis."""
    memory = compiled.memory_analysis()
    return 0 if memory is None else memory.temp_size_in_bytes + memory.output_size_in_bytes


def fitted_test(compile_at: Callable[[int], jax.stages.Compiled], num_tasks: int,
                budget: int | None) -> tuple[jax.stages.Compiled, int]:
    """A test compiled to fit in memory: every task at once when that fits in `budget` bytes, else
    as many at a time as fit (the rest in sequence), by XLA's memory analysis of the compiled program.

    A 100-pull bandit's 1000 held-out tasks × 3 seeds × 2 trials of the attention learner asked for
    55 GB at once: found before running, not after an hour of training.

    Args:
      compile_at: `test_batch -> compiled test` (0: all tasks at once).
      num_tasks: T, the held-out tasks.
      budget: bytes the test may take (`memory_budget`); None: every task at once.

    Returns:
      `(compiled, test_batch)`, test_batch 0 when every task runs at once.
    """
    batch, compiled = 0, compile_at(0)
    while budget is not None and batch != 1 and _needs(compiled) > budget:
        size = batch or num_tasks  # the memory grows with the tasks run at once: shrink in proportion, with room
        batch = max(1, min(size - 1, int(0.9 * size * budget / _needs(compiled))))
        compiled = compile_at(batch)
    return compiled, batch


def count_tasks(tasks: EnvParams) -> int:
    """T, the leading axis of a batch of task parameters.

    Args:
      tasks: task parameters with a leading `[T]` axis.

    Returns:
      T.
    """
    return jax.tree.leaves(tasks)[0].shape[0]


def per_task_seed(batched, x, tasks: EnvParams, key: chex.PRNGKey, num_seeds: int) -> chex.Array:
    """`batched(x, tasks, keys)` on every task S times: `[S × T, P]`.

    Args:
      batched (Callable): `(x, tasks, keys[S, T]) -> [S, T, P]` (`_batched`, `programs`).
      x (Any): the state or parameters to evaluate.
      tasks: task parameters with a leading `[T]` axis.
      key: consumed; split into the `[S, T]` keys.
      num_seeds: S.

    Returns:
      `[S × T, P]` the returns, seed-major.
    """
    returns = batched(x, tasks, jax.random.split(key, (num_seeds, count_tasks(tasks))))
    return returns.reshape(-1, returns.shape[-1])


def protocol_fns(learner: MetaLearner, num_episodes: int, num_steps: int) -> dict:
    """`{protocol: fn(state, task, key) -> [P]}` on one task: the trial, and the inner steps (gradient kind) or the support batch (latent kind).

    Args:
      learner: any learner.
      num_episodes: E of the trial.
      num_steps: K of the inner-steps protocol.

    Returns:
      The unbatched functions; `learner_returns` batches them over tasks and seeds.
    """
    fns = {"trial": lambda s, t, k: learner.trial(s, t, k, num_episodes)}
    if learner.evaluate is not None:
        fns["inner_steps"] = lambda s, t, k: learner.evaluate(s.params, t, k, num_steps)
    if learner.support is not None:
        fns["support"] = learner.support
    return fns


def with_support(returns: dict, num_steps: int) -> dict:
    """A gradient learner's `protocol -> returns` with a `support` protocol beside a latent learner's:
    its inner-steps curve before and after its own K inner steps.

    Args:
      returns: `protocol -> [..., P]`, as `learner_returns` gives them.
      num_steps: K, the inner steps the learner takes (its `config.inner_steps`).

    Returns:
      `returns` with `"support": [..., 2]` where it has `inner_steps`.
    """
    if "inner_steps" not in returns:
        return returns
    return {**returns, "support": np.asarray(returns["inner_steps"])[..., [0, num_steps]]}


def programs(learner: MetaLearner, num_episodes: int, num_steps: int, test_batch: int = 0) -> dict:
    """`{protocol: batched fn of the state}`: `protocol_fns` over tasks and seeds, `test_batch`
    tasks at a time (0: all).

    Args:
      learner: any learner.
      num_episodes: E of the trial.
      num_steps: K of the inner-steps protocol.
      test_batch: tasks run at once; 0: all T.

    Returns:
      `{protocol: (x, tasks[T], keys[S, T]) -> [S, T, P]}`, jitted.
    """
    return {name: _batched(fn, test_batch) for name, fn in protocol_fns(learner, num_episodes, num_steps).items()}


def adaptation_curve(learner: MetaLearner, params: Params, tasks: EnvParams, key: chex.PRNGKey, *,
                     num_steps: int, num_seeds: int = 1) -> Curve:
    """MAML's protocol: adapt `params` on each of the `[T]` `tasks`, `num_seeds` times, measure returns.

    Args:
      learner: a gradient learner; supplies `evaluate(params, task_params, key, num_steps)`.
      params: the starting point (meta-learned, or any baseline's).
      tasks: task parameters with a leading `[T]` axis, e.g. `family.test_tasks()`.
      key: consumed; the same key gives the same support and evaluation rollouts to every
        starting point, so curves of different `params` are paired.
      num_steps: K.
      num_seeds: S independent trials per task.

    Returns:
      The curve over N = S × T trials at 0..K inner steps.

    Raises:
      InputError: the learner is not of the gradient kind.
    """
    if learner.evaluate is None:
        raise InputError(f"the inner-steps protocol needs a gradient learner; this one is of the {learner.kind} kind "
                         "(use trial_curve)")
    batched = _batched(lambda p, t, k: learner.evaluate(p, t, k, num_steps))
    return summarize(per_task_seed(batched, params, tasks, key, num_seeds))


def trial_curve(learner: MetaLearner, state: MetaState, tasks: EnvParams, key: chex.PRNGKey, *,
                num_episodes: int, num_seeds: int = 1) -> Curve:
    """The trial protocol: a trial of E episodes on each of the `[T]` `tasks`, `num_seeds` times.

    Args:
      learner: any learner; supplies `trial(state, task_params, key, num_episodes)`.
      state: the learner's state (meta-learned, or any baseline's).
      tasks: task parameters with a leading `[T]` axis.
      key: consumed; the same key gives every state the same environments' random numbers.
      num_episodes: E.
      num_seeds: S independent trials per task.

    Returns:
      The curve over N = S × T trials at episodes 1..E.
    """
    trial = _batched(protocol_fns(learner, num_episodes, num_steps=0)["trial"])
    return summarize(per_task_seed(trial, state, tasks, key, num_seeds))


def summarize(returns: chex.Array) -> Curve:
    """Mean and normal 95% interval half-width over the trials of `returns[N, P]`.

    Args:
      returns: `[N, P]` one row per trial.

    Returns:
      The curve; its `ci95` is 1.96 × the standard error (sample std, ddof 1), or zeros when N = 1.
    """
    n = returns.shape[0]
    ci95 = 1.96 * jnp.std(returns, axis=0, ddof=1) / jnp.sqrt(n) if n > 1 else jnp.zeros(returns.shape[1])
    return Curve(mean=jnp.mean(returns, axis=0), ci95=ci95, returns=returns)


def curve_row(returns: chex.Array, *, total: bool, num_tasks: int) -> dict:
    """One row of a report section from every trial's returns `[N, P]`.

    Args:
      returns: `[N, P]`, N = runs × `num_tasks` with the task minor.
      total: also give the statistics of each trial's sum over the points (a trial's total).
      num_tasks: T, the held-out tasks.

    Returns:
      `{"scores", "mean", "ci95", "mean_ci", "iqm", "iqm_ci"}` over the points (module
      docstring), with `total`, `total_ci95`, `total_mean_ci`, `total_iqm`, `total_iqm_ci` when asked.
    """
    curve = summarize(jnp.asarray(returns))
    scores = stats.by_task(np.asarray(curve.returns), num_tasks)
    row = {"mean": stats.rounded(curve.mean), "ci95": stats.rounded(curve.ci95), **_bootstrap(scores, "")}
    if total:
        whole = summarize(jnp.sum(curve.returns, axis=1, keepdims=True))
        row.update(total=stats.rounded(whole.mean)[0], total_ci95=stats.rounded(whole.ci95)[0],
                   **{k: v[0] for k, v in _bootstrap(scores.sum(axis=-1, keepdims=True), "total_").items()})
    row["scores"] = np.round(scores, 4).tolist()
    return row


def _bootstrap(scores: np.ndarray, prefix: str) -> dict:
    """`stats.mean_and_iqm`'s intervals of `scores[R, T, P]`, keys prefixed, the point mean left out."""
    estimates = stats.mean_and_iqm(scores)
    return {prefix + key: value for key, value in estimates.items() if key != "mean"}


def constant_returns(per_trial: chex.Array, num_points: int) -> np.ndarray:
    """A strategy that does not adapt across points: its per-trial return at every point, `[N, P]`.

    Args:
      per_trial: `[N]` (or any shape, flattened) one return per trial.
      num_points: P.

    Returns:
      `[N, P]`.
    """
    return np.repeat(np.asarray(per_trial).reshape(-1, 1), num_points, axis=1)


def section(protocol: str, num_points: int, num_tasks: int) -> dict:
    """An empty report section of `protocol` over its points.

    Args:
      protocol: a key of `PROTOCOLS`.
      num_points: E episodes (points 1..E), K inner steps (points 0..K) or 1 support batch (points 0, 1).
      num_tasks: T, the held-out tasks its rows' trials run on.

    Returns:
      `{"x": label, "points": [...], "tasks": T, "rows": {}}`.
    """
    points = list(range(1, num_points + 1)) if protocol == "trial" else list(range(num_points + 1))
    return {"x": PROTOCOLS[protocol], "points": points, "tasks": num_tasks, "rows": {}}


def add_rows(report: dict, protocol: str, rows: dict[str, chex.Array]) -> dict:
    """Add `name -> returns[N, P]` rows to the report's `protocol` section, where it has one.

    Every baseline's row gets the probability that the meta-learned row beats it (once both are in).

    Args:
      report: a `meta_test` report; changed in place.
      protocol: a key of `PROTOCOLS`.
      rows: `name -> [N, P]` returns of every trial at the section's points, N = runs × T.

    Returns:
      `report` itself.
    """
    target = report["protocols"].get(protocol)
    if target is not None:
        for name, returns in rows.items():
            target["rows"][name] = curve_row(returns, total=protocol == "trial", num_tasks=target["tasks"])
        learned = target["rows"].get(LEARNED)
        for name, row in target["rows"].items():
            if learned is not None and name != LEARNED and "improvement" not in row:
                row["improvement"] = _improvement(learned["scores"], row["scores"], total=protocol == "trial")
    return report


def _improvement(learned: list, baseline: list, *, total: bool) -> dict:
    """P(meta-learned > baseline) at each point of `[R][T][P]` scores (and of the trial's total)."""
    x, y = np.asarray(learned), np.asarray(baseline)
    out = stats.improvement(x, y)
    if total:
        whole = stats.improvement(x.sum(axis=-1, keepdims=True), y.sum(axis=-1, keepdims=True))
        out.update(total_poi=whole["poi"][0], total_poi_ci=whole["poi_ci"][0])
    return out


def learner_returns(learner: MetaLearner, state: MetaState, tasks: EnvParams, key: chex.PRNGKey, *,
                    num_episodes: int, num_steps: int, num_seeds: int, test_batch: int = 0) -> dict[str, chex.Array]:
    """Every protocol `learner` has, from `state`: `protocol -> returns[N, P]`.

    Args:
      learner: any learner.
      state: its state.
      tasks: `[T]` task parameters.
      key: consumed, the same for every protocol.
      num_episodes: E of the trial.
      num_steps: K of the inner-steps protocol (gradient kind only).
      num_seeds: S trials per task.
      test_batch: tasks tested at once, the rest in sequence (0: all); the config's `test_batch`.

    Returns:
      `{"trial": [N, E]}`, and `"inner_steps": [N, K + 1]` for a gradient learner or
      `"support": [N, 2]` for a latent one.
    """
    return {protocol: per_task_seed(batched, state, tasks, key, num_seeds)
            for protocol, batched in programs(learner, num_episodes, num_steps, test_batch).items()}


def paired_returns(learner: MetaLearner, state: MetaState, tasks: EnvParams, key: chex.PRNGKey, *,
                   num_episodes: int, num_steps: int, num_seeds: int = 1, test_batch: int = 0,
                   baseline_seed: int = RANDOM_INIT_SEED) -> dict[str, dict[str, chex.Array]]:
    """Every protocol's returns of `state` and of a random initialisation, same tasks, same keys.

    Args:
      learner: any learner; its `init` gives the random initialisation.
      state: the meta-learned state.
      tasks: task parameters with a leading `[T]` axis.
      key: consumed; the same for both, so they are paired.
      num_episodes: E, the episodes of a trial.
      num_steps: K of the inner-steps protocol (gradient learners).
      num_seeds: S independent trials per task.
      test_batch: tasks tested at once, the rest in sequence (0: all).
      baseline_seed: seeds the random initialisation.

    Returns:
      `protocol -> {"meta-learned": [N, P], "random_init": [N, P]}`.
    """
    # laid out as `state` is (a run's mesh): arguments placed differently would compile each program twice
    rand = place(learner.init(jax.random.key(baseline_seed)), jax.tree.map(lambda x: x.sharding, state))
    return {protocol: {LEARNED: per_task_seed(batched, state, tasks, key, num_seeds),  # one compile for both
                       "random_init": per_task_seed(batched, rand, tasks, key, num_seeds)}
            for protocol, batched in programs(learner, num_episodes, num_steps, test_batch).items()}


def meta_test(learner: MetaLearner, state: MetaState, tasks: EnvParams, key: chex.PRNGKey, *,
              num_episodes: int, num_steps: int, num_seeds: int = 1, test_batch: int = 0,
              baseline_seed: int = RANDOM_INIT_SEED) -> dict:
    """The meta-test report: `state` against a random initialisation, same tasks, same keys.

    Args:
      learner: any learner; its `init` gives the random initialisation.
      state: the meta-learned state.
      tasks: task parameters with a leading `[T]` axis, e.g. `family.test_tasks()`.
      key: consumed; the same for both, so they are paired.
      num_episodes: E, the episodes of a trial.
      num_steps: K of the inner-steps protocol (gradient learners).
      num_seeds: S independent trials per task.
      test_batch: tasks tested at once, the rest in sequence (0: all).
      baseline_seed: seeds the random initialisation.

    Returns:
      A JSON-ready dict `{"kind", "protocols": {protocol: section}}` with rows `meta-learned` and
      `random_init` in each section.
    """
    sizes = {"trial": num_episodes, "inner_steps": num_steps, "support": 1}
    returns = paired_returns(learner, state, tasks, key, num_episodes=num_episodes, num_steps=num_steps,
                             num_seeds=num_seeds, test_batch=test_batch, baseline_seed=baseline_seed)
    report = {"kind": learner.kind,
              "protocols": {name: section(name, sizes[name], count_tasks(tasks)) for name in returns}}
    for name, rows in returns.items():
        add_rows(report, name, rows)
    return report
