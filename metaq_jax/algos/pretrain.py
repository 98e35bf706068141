"""Multi-task pretraining: the baseline that learns one Q-network for all tasks, no adaptation."""

import chex
import jax

from metaq_jax.algos.base import MetaQProblem, TaskStats
from metaq_jax.types import EnvParams, Params


def pretrain_task_grad(problem: MetaQProblem, params: Params, target_params: Params,
                       task_params: EnvParams, key: chex.PRNGKey) -> tuple[Params, TaskStats]:
    """One task's ∇θ of the TD loss on θ's own support data (plain Q-learning across tasks).

    It collects what the meta-learners collect (support, then query with K adapted steps), so a
    pretrained network has seen as many environment steps as a meta-learned one; the query
    rollout only measures fine-tuning.

    Args:
      problem: the meta-Q problem.
      params: the network's parameters θ.
      target_params: the target network of the TD losses.
      task_params: one task (no leading batch axis).
      key: consumed; split into the support and the query rollout's keys.

    Returns:
      `(∇θ TD loss on the support data, structured like params; the task's TaskStats)`.
    """
    k_support, k_query = jax.random.split(key)
    support = problem.support(params, task_params, k_support)
    grad = jax.grad(problem.td_loss)(params, target_params, support)
    adapted = problem.inner(params, target_params, support, first_order=True)
    query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
    meta_loss = problem.td_loss(adapted, target_params, query)
    return grad, problem.task_stats(params, target_params, support, query, meta_loss)
