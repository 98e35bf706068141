"""A learned oracle: a Q-learner trained on one test task alone, the ceiling where no exact one exists.

Plain DQN-style Q-learning on the task: each round collects M × L ε-greedy transitions with the
current network (ε decaying linearly from 1 to `final_epsilon`), then takes `updates` Adam steps
of the TD loss on them against a target network frozen for the round. Its return is that of the
greedy policy after the last round, measured like every other curve of the protocol.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax

from metaq_jax.algos.base import MetaQProblem
from metaq_jax.types import EnvParams, Params


@dataclasses.dataclass(frozen=True)
class OracleBudget:
    """How long the per-task Q-learner trains: `rounds` × (one rollout, `updates` Adam steps).

    Attributes:
      rounds: rollouts, each followed by `updates` Adam steps.
      updates: Adam steps per round, on that round's data.
      lr: Adam's learning rate.
      final_epsilon: ε of the last round's rollout; ε falls linearly from 1 to it.
    """

    rounds: int = 200
    updates: int = 10
    lr: float = 1e-3
    final_epsilon: float = 0.05


def train_on_task(problem: MetaQProblem, params: Params, task: EnvParams, key: chex.PRNGKey,
                  budget: OracleBudget) -> Params:
    """Q-learning on one task from `params` (network variables, no Meta-SGD rates). Jit-able.

    Args:
      problem: a problem without Meta-SGD: its collection, network and TD loss.
      params: the network variables to start from.
      task: one task's parameters (no leading batch axis).
      key: consumed; one key per round's rollout.
      budget: how long to train.

    Returns:
      The trained network variables, structured like `params`.
    """
    optimizer = optax.adam(budget.lr)

    def one_round(carry, xs):
        round_key, epsilon = xs
        target = carry[0]  # frozen for the round: its values at next_obs are computed once
        data = problem.inner_data(target, problem.collect(target, task, round_key, epsilon))

        def update(carry, _):
            net, opt_state = carry
            updates, opt_state = optimizer.update(jax.grad(problem.inner_loss)(net, data), opt_state, net)
            return (optax.apply_updates(net, updates), opt_state), None

        carry, _ = jax.lax.scan(update, carry, None, length=budget.updates)
        return carry, None

    epsilons = jnp.linspace(1.0, budget.final_epsilon, budget.rounds)
    (net, _), _ = jax.lax.scan(one_round, (params, optimizer.init(params)),
                               (jax.random.split(key, budget.rounds), epsilons))
    return net


def learned_oracle_returns(problem: MetaQProblem, init: Params, tasks: EnvParams, key: chex.PRNGKey, *,
                           num_seeds: int = 1, budget: OracleBudget = OracleBudget()) -> chex.Array:
    """Greedy (`eval_epsilon`) return of a Q-learner trained on each of the `[T]` tasks. `[S * T]`.

    Each seed trains and evaluates anew.

    Args:
      problem: a problem without Meta-SGD; its `config.eval_epsilon` is the evaluation's ε.
      init: network variables every learner starts from.
      tasks: task parameters with a leading `[T]` axis.
      key: consumed; split per (seed, task) into a training and an evaluation key.
      num_seeds: S, independent learners per task.
      budget: how long each learner trains.

    Returns:
      The mean episode return of each learner's final policy, `[S * T]`, seed-major.
    """
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, (num_seeds, num_tasks))

    def one(task, k):
        k_train, k_eval = jax.random.split(k)
        net = train_on_task(problem, init, task, k_train, budget)
        return problem.episode_return(net, task, k_eval)

    return jax.jit(jax.vmap(jax.vmap(one), in_axes=(None, 0)))(tasks, keys).reshape(-1)
