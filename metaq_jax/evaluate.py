"""Meta-test: returns on held-out tasks after 0..K inner steps, with 95% confidence intervals."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from metaq_jax.algos.base import MetaLearner
from metaq_jax.types import EnvParams, Params


class AdaptationCurve(NamedTuple):
    """Return after 0..K inner steps over N = tasks × seeds trials.

    Attributes:
      mean: `[K + 1]` mean return after k = 0..K inner steps.
      ci95: `[K + 1]` half-width of the normal 95% interval of the mean (0 when N = 1).
      returns: `[N, K + 1]` every trial's returns.
    """

    mean: chex.Array  # [K + 1]
    ci95: chex.Array  # [K + 1] half-width of the normal 95% interval of the mean
    returns: chex.Array  # [N, K + 1]


def adaptation_curve(learner: MetaLearner, params: Params, tasks: EnvParams, key: chex.PRNGKey, *,
                     num_steps: int, num_seeds: int = 1) -> AdaptationCurve:
    """Adapt `params` on each of the `[T]` `tasks`, `num_seeds` times, and measure returns.

    Args:
      learner: supplies `evaluate(params, task_params, key, num_steps)`.
      params: the starting point (meta-learned, or any baseline's).
      tasks: task parameters with a leading `[T]` axis, e.g. `family.test_tasks()`.
      key: consumed; the same key gives the same support and evaluation rollouts to every
        starting point, so curves of different `params` are paired.
      num_steps: K.
      num_seeds: S independent trials per task.

    Returns:
      The curve over N = S × T trials.
    """
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, (num_seeds, num_tasks))
    per_task = jax.vmap(lambda t, k: learner.evaluate(params, t, k, num_steps))
    returns = jax.jit(jax.vmap(per_task, in_axes=(None, 0)))(tasks, keys).reshape(-1, num_steps + 1)
    return summarize(returns)


def summarize(returns: chex.Array) -> AdaptationCurve:
    """Mean and normal 95% interval half-width over the trials of `returns[N, K + 1]`.

    Args:
      returns: `[N, K + 1]` one row per trial.

    Returns:
      The curve; its `ci95` is 1.96 × the standard error (sample std, ddof 1), or zeros when N = 1.
    """
    n = returns.shape[0]
    ci95 = 1.96 * jnp.std(returns, axis=0, ddof=1) / jnp.sqrt(n) if n > 1 else jnp.zeros(returns.shape[1])
    return AdaptationCurve(mean=jnp.mean(returns, axis=0), ci95=ci95, returns=returns)


def as_list(values: chex.Array) -> list[float]:
    """Host floats for JSON, rounded to 4 decimals.

    Args:
      values: a 1-d array (or any iterable of numbers).

    Returns:
      A list of Python floats.
    """
    return [round(float(v), 4) for v in values]


def meta_test(learner: MetaLearner, params: Params, tasks: EnvParams, key: chex.PRNGKey, *,
              num_steps: int, num_seeds: int = 1, baseline_seed: int = 12345) -> dict:
    """The meta-test report: `params` against a random initialisation, same tasks, same keys.

    Args:
      learner: supplies `init` (for the random initialisation) and `evaluate`.
      params: the meta-learned starting point.
      tasks: task parameters with a leading `[T]` axis, e.g. `family.test_tasks()`.
      key: consumed; the same for both curves, so they are paired.
      num_steps: K.
      num_seeds: S independent trials per task.
      baseline_seed: seeds the random initialisation.

    Returns:
      A JSON-ready dict: `inner_steps` (0..K), `returns` and `ci95` of `params`, and
      `baselines` / `baselines_ci95` keyed by name (`random_init`).
    """
    meta = adaptation_curve(learner, params, tasks, key, num_steps=num_steps, num_seeds=num_seeds)
    random_params = learner.init(jax.random.key(baseline_seed)).params
    rand = adaptation_curve(learner, random_params, tasks, key, num_steps=num_steps, num_seeds=num_seeds)
    return {
        "inner_steps": list(range(num_steps + 1)),
        "returns": as_list(meta.mean),
        "ci95": as_list(meta.ci95),
        "baselines": {"random_init": as_list(rand.mean)},
        "baselines_ci95": {"random_init": as_list(rand.ci95)},
    }
