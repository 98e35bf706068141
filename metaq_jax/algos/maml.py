"""MAML on the TD loss: exact second order by `jax.grad` through the inner loop, or first order."""

import chex
import jax

from metaq_jax.algos.base import MetaQProblem, TaskStats
from metaq_jax.types import EnvParams, Params, Transition


def maml_loss(problem: MetaQProblem, params: Params, target_params: Params, support: Transition,
              query: Transition, *, first_order: bool = False) -> chex.Array:
    """The MAML objective of one task on fixed data: `L_query(adapt(θ, support))`. `[]`."""
    adapted = problem.inner(params, target_params, support, first_order=first_order)
    return problem.td_loss(adapted, target_params, query)


def maml_task_grad(problem: MetaQProblem, params: Params, target_params: Params,
                   task_params: EnvParams, key: chex.PRNGKey, *,
                   first_order: bool = False) -> tuple[Params, TaskStats]:
    """One task's meta-gradient ∇θ L_query(adapt(θ, support)).

    Support data come from θ's ε-greedy policy; query data from the adapted parameters' own
    policy, collected inside the differentiated function. The data carry no gradient, so this is
    the gradient of `maml_loss` at the data collected.
    """
    k_support, k_query = jax.random.split(key)
    support = problem.support(params, task_params, k_support)

    def objective(theta):
        adapted = problem.inner(theta, target_params, support, first_order=first_order)
        query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
        return problem.td_loss(adapted, target_params, query), query

    (loss, query), grad = jax.value_and_grad(objective, has_aux=True)(params)
    return grad, problem.task_stats(params, target_params, support, query, loss)
