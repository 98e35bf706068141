"""MAML on the TD loss: exact second order by `jax.grad` through the inner loop, or first order."""

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from metaq_jax.algos.base import MetaQProblem, TaskStats
from metaq_jax.types import EnvParams, Params, Transition


def adapted_and_loss(problem: MetaQProblem, params: Params, target_params: Params, support: Transition,
                     query_fn: Callable[[Params], Transition], *,
                     first_order: bool) -> tuple[Params, Transition, chex.Array]:
    """`(adapted params, query data, meta-loss)` of one task; `query_fn(adapted)` gives the data.

    The meta-loss is `L_query(adapt(θ, support))`, or with `config.step_losses` the mean of the
    query losses after each inner step 1..K (MAML++'s multi-step loss), which asks every step
    count, not only K, to do well.

    Args:
      problem: the meta-Q problem.
      params: meta-parameters θ.
      target_params: the target network of every TD loss.
      support: `[L, M]` support transitions of the task.
      query_fn: `query_fn(adapted) -> [L, M]` query transitions.
      first_order: stop gradients through the inner gradients.

    Returns:
      `(adapted params, query transitions, meta-loss [])`.
    """
    if not problem.config.step_losses:
        adapted = problem.inner(params, target_params, support, first_order=first_order)
        query = query_fn(adapted)
        return adapted, query, problem.td_loss(adapted, target_params, query)
    path = problem.inner(params, target_params, support, first_order=first_order, path=True)  # [K, ...]
    adapted = problem.with_net(params, jax.tree.map(lambda x: x[-1], path))
    query = query_fn(adapted)
    step_losses = jax.vmap(problem.inner_loss, in_axes=(0, None))(
        path, problem.inner_data(problem.net(target_params), query))
    return adapted, query, jnp.mean(step_losses)


def maml_loss(problem: MetaQProblem, params: Params, target_params: Params, support: Transition,
              query: Transition, *, first_order: bool = False) -> chex.Array:
    """The MAML objective of one task on fixed data: `L_query(adapt(θ, support))`. `[]`.

    Args:
      problem: the meta-Q problem.
      params: meta-parameters θ; differentiate with respect to them for the meta-gradient.
      target_params: the target network of every TD loss.
      support: `[L, M]` support transitions.
      query: `[L, M]` query transitions.
      first_order: stop gradients through the inner gradients (first-order MAML).

    Returns:
      The meta-loss, a scalar.
    """
    return adapted_and_loss(problem, params, target_params, support, lambda _: query,
                            first_order=first_order)[2]


def maml_task_grad(problem: MetaQProblem, params: Params, target_params: Params,
                   task_params: EnvParams, key: chex.PRNGKey, *,
                   first_order: bool = False) -> tuple[Params, TaskStats]:
    """One task's meta-gradient ∇θ L_query(adapt(θ, support)).

    Support data come from θ's ε-greedy policy; query data from the adapted parameters' own
    policy, collected inside the differentiated function. The data carry no gradient, so this is
    the gradient of `maml_loss` at the data collected.

    Args:
      problem: the meta-Q problem.
      params: meta-parameters θ.
      target_params: the target network of every TD loss.
      task_params: one task (no leading batch axis).
      key: consumed; split into the support and the query rollout's keys.
      first_order: stop gradients through the inner gradients (first-order MAML).

    Returns:
      `(meta-gradient, structured like params; the task's TaskStats)`.
    """
    k_support, k_query = jax.random.split(key)
    support = problem.support(params, task_params, k_support)

    def objective(theta):
        _, query, loss = adapted_and_loss(
            problem, theta, target_params, support,
            lambda adapted: problem.collect(adapted, task_params, k_query, problem.config.epsilon),
            first_order=first_order)
        return loss, query

    (loss, query), grad = jax.value_and_grad(objective, has_aux=True)(params)
    return grad, problem.task_stats(params, target_params, support, query, loss)
