"""Reptile (Nichol et al. 2018): move θ toward each task's adapted parameters."""

import chex
import jax

from metaq_jax.algos.base import MetaQProblem, TaskStats
from metaq_jax.types import EnvParams, Params


def reptile_task_grad(problem: MetaQProblem, params: Params, target_params: Params,
                      task_params: EnvParams, key: chex.PRNGKey) -> tuple[Params, TaskStats]:
    """One task's Reptile direction θ − φ, φ = K inner steps on the support data.

    Handed to the outer optimiser as a gradient: with SGD at rate β this is θ ← θ + β(φ − θ).
    The query rollout with φ only measures the adapted policy.

    Args:
      problem: the meta-Q problem.
      params: meta-parameters θ.
      target_params: the target network of the TD losses.
      task_params: one task (no leading batch axis).
      key: consumed; split into the support and the query rollout's keys.

    Returns:
      `(θ − φ, structured like params; the task's TaskStats)`.
    """
    k_support, k_query = jax.random.split(key)
    support = problem.support(params, task_params, k_support)
    adapted = problem.inner(params, target_params, support, first_order=True)
    query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
    grad = jax.tree.map(lambda p, a: p - a, params, adapted)
    meta_loss = problem.td_loss(adapted, target_params, query)
    return grad, problem.task_stats(params, target_params, support, query, meta_loss)
