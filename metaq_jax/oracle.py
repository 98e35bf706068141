"""A learned oracle: a Q-learner trained on one test task alone until its learning curve stops
rising, the ceiling where no exact one exists.

Per task, for each discount of `OracleBudget.gammas` and step size of its `lrs`, double DQN from a flashbax replay: each
round its `num_envs` environments run on `rollout_length` steps ε-greedy (ε falling linearly from
1 to `final_epsilon` over `explore_rounds`; episodes run on across rounds, so long episodes are
seen whole), the transitions join the replay, and `updates` Adam steps follow on replayed batches
against a target network copied every `target_period` rounds. Every `eval_every` rounds the greedy
policy (`eval_epsilon`) plays one whole episode in `eval_envs` environments: that is the learning
curve. The evaluations after `explore_rounds` compete: a learner keeps its best evaluated policy
and stops when that best has not risen by more than `tolerance` (relative) in `patience`
evaluations, or at `max_rounds`. The oracle's policy is the best over the task's learners (the
grid of `gammas` × `lrs`); its return is measured again, on fresh episodes, like every other
curve of the protocol.
"""

import dataclasses
from typing import NamedTuple

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from metaq_jax import losses, rollout
from metaq_jax.algos import offpolicy
from metaq_jax.algos.base import MetaQProblem
from metaq_jax.errors import InputError
from metaq_jax.types import EnvParams, Params


@dataclasses.dataclass(frozen=True)
class OracleBudget:
    """How the per-task Q-learner trains and when it stops.

    Attributes:
      gammas: the discounts tried; each task keeps the best learner's policy.
      max_rounds: the most rounds a learner trains (a multiple of `eval_every`).
      num_envs: environments collecting each round.
      rollout_length: steps of each environment per round.
      updates: Adam steps per round.
      batch_size: transitions per Adam step, from the replay.
      replay_size: the replay's capacity, in transitions.
      lrs: Adam's step sizes tried; with `gammas`, a grid of learners per task.
      explore_rounds: rounds over which ε falls from 1 to `final_epsilon`; no stopping before.
      final_epsilon: ε after `explore_rounds`.
      target_period: rounds between copies of the network into the target network.
      eval_every: rounds between greedy evaluations.
      eval_envs: environments of each evaluation (one whole episode each).
      patience: evaluations without a rise beyond `tolerance` before a learner stops.
      tolerance: the relative rise of the best evaluation that counts as one.
      task_batch: learners trained at once (vmapped); the rest in sequence, to bound memory.
    """

    gammas: tuple[float, ...] = (0.0, 0.99)
    max_rounds: int = 1000
    num_envs: int = 16
    rollout_length: int = 32
    updates: int = 32
    batch_size: int = 128
    replay_size: int = 20_000
    lrs: tuple[float, ...] = (2.5e-4, 1e-3)
    explore_rounds: int = 100
    final_epsilon: float = 0.05
    target_period: int = 2
    eval_every: int = 10
    eval_envs: int = 16
    patience: int = 20
    tolerance: float = 0.01
    task_batch: int = 16

    def __post_init__(self):
        if self.max_rounds % self.eval_every or self.explore_rounds >= self.max_rounds:
            raise InputError(f"OracleBudget.max_rounds = {self.max_rounds}: must be a multiple of eval_every "
                             f"({self.eval_every}) and > explore_rounds ({self.explore_rounds})")

    @property
    def num_evals(self) -> int:
        """Points of the learning curve at most: `max_rounds // eval_every`.

        Returns:
          The count.
        """
        return self.max_rounds // self.eval_every


class OracleRun(NamedTuple):
    """The learned oracle on `[N]` (seed, task) pairs.

    Attributes:
      returns: `[N]` the return of the chosen policy on fresh episodes.
      curves: `[N, num_evals]` the chosen discount's learning curve (greedy return at each
        evaluation), NaN after its learner stopped.
      rounds: `[N]` rounds the chosen discount's learner trained.
      gammas: `[N]` the chosen discount.
    """

    returns: chex.Array
    curves: chex.Array
    rounds: chex.Array
    gammas: chex.Array


class _Learner(NamedTuple):
    net: Params
    target: Params
    opt_state: optax.OptState
    buffer: object
    obs: chex.Array
    env_state: object
    best: Params
    best_return: chex.Array
    since_best: chex.Array
    rounds: chex.Array
    curve: chex.Array
    done: chex.Array


def greedy_return(problem: MetaQProblem, net: Params, task: EnvParams, key: chex.PRNGKey,
                  num_envs: int) -> chex.Array:
    """The return of one whole episode acting at `config.eval_epsilon`, mean over `num_envs` envs. `[]`.

    Args:
      problem: its family, network and `config.eval_epsilon`.
      net: network variables.
      task: one task.
      key: consumed.
      num_envs: environments.

    Returns:
      The mean episode return.
    """
    data = rollout.collect(problem.family.env, problem.network.apply, net, task, key, num_envs=num_envs,
                           length=problem.family.episode_length, epsilon=problem.config.eval_epsilon)
    return rollout.episode_returns(data, 1)[0]


def train_on_task(problem: MetaQProblem, params: Params, task: EnvParams, key: chex.PRNGKey,
                  budget: OracleBudget, gamma: chex.Numeric, lr: chex.Numeric) -> tuple[Params, chex.Array, chex.Array]:
    """Double DQN on one task from `params` until the stopping rule (module docstring). Jit-able.

    Args:
      problem: its family, network and `config.eval_epsilon`.
      params: network variables to start from.
      task: one task (no batch axis).
      key: consumed.
      budget: how it trains and stops.
      gamma: the discount of its TD targets.
      lr: Adam's step size.

    Returns:
      `(best evaluated network variables, curve [num_evals] (NaN after stopping), rounds trained)`.
    """
    env, apply = problem.family.env, problem.network.apply
    optimizer = optax.adam(lr)
    replay = offpolicy.lenient(fbx.make_item_buffer(max_length=budget.replay_size, min_length=1,
                                                    sample_batch_size=budget.batch_size, add_batches=True))
    k_start, k_loop = jax.random.split(key)
    start = rollout.start_rollout(env, task, k_start, num_envs=budget.num_envs, length=1,
                                  num_actions=env.num_actions, epsilon=1.0)
    learner = _Learner(net=params, target=params, opt_state=optimizer.init(params),
                       buffer=replay.init(offpolicy.example_item(start.obs[0])), obs=start.obs,
                       env_state=start.state, best=params, best_return=jnp.array(-jnp.inf),
                       since_best=jnp.zeros((), jnp.int32), rounds=jnp.zeros((), jnp.int32),
                       curve=jnp.full(budget.num_evals, jnp.nan), done=jnp.zeros((), bool))

    def loss(net, target, batch):
        return losses.td_loss(apply, net, target, batch, gamma, double_q=True)

    def one_round(s: _Learner, key) -> tuple[_Learner, None]:
        k_roll, k_updates = jax.random.split(key)
        epsilon = jnp.maximum(budget.final_epsilon,
                              1.0 - (1.0 - budget.final_epsilon) * s.rounds / budget.explore_rounds)
        begin = rollout.start_rollout(env, task, k_roll, num_envs=budget.num_envs, length=budget.rollout_length,
                                      num_actions=env.num_actions, epsilon=epsilon)
        (obs, env_state), data = jax.lax.scan(rollout.acting_step(env, apply, s.net, task, epsilon),
                                              (s.obs, s.env_state), begin.per_step)
        buffer = replay.add(s.buffer, offpolicy.flat(data))

        def update(carry, k):
            net, opt_state = carry
            grads = jax.grad(loss)(net, s.target, replay.sample(buffer, k).experience)
            updates, opt_state = optimizer.update(grads, opt_state, net)
            return (optax.apply_updates(net, updates), opt_state), None

        (net, opt_state), _ = jax.lax.scan(update, (s.net, s.opt_state), jax.random.split(k_updates, budget.updates))
        rounds = s.rounds + 1
        target = optax.periodic_update(net, s.target, rounds, budget.target_period)
        return s._replace(net=net, target=target, opt_state=opt_state, buffer=buffer, obs=obs,
                          env_state=env_state, rounds=rounds), None

    def period(s: _Learner) -> _Learner:
        k_period = jax.random.fold_in(k_loop, s.rounds)
        k_rounds, k_eval = jax.random.split(k_period)
        s, _ = jax.lax.scan(one_round, s, jax.random.split(k_rounds, budget.eval_every))
        value = greedy_return(problem, s.net, task, k_eval, budget.eval_envs)
        explored = s.rounds > budget.explore_rounds  # only then does an evaluation compete (or count for stopping)
        bar = jnp.where(jnp.isfinite(s.best_return), s.best_return + budget.tolerance * jnp.abs(s.best_return), -jnp.inf)
        rose = explored & (value > bar)
        better = explored & (value > s.best_return)
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), s.net, s.best)
        since_best = jnp.where(rose, 0, s.since_best + explored)
        done = (s.rounds >= budget.max_rounds) | (since_best >= budget.patience)
        return s._replace(best=best, best_return=jnp.where(better, value, s.best_return), since_best=since_best,
                          curve=s.curve.at[s.rounds // budget.eval_every - 1].set(value), done=done)

    final = jax.lax.while_loop(lambda s: ~s.done, period, learner)
    return final.best, final.curve, final.rounds


def learned_oracle(problem: MetaQProblem, init: Params, tasks: EnvParams, key: chex.PRNGKey, *,
                   num_seeds: int = 1, budget: OracleBudget = OracleBudget()) -> OracleRun:
    """Train the oracle on each of the `[T]` tasks, `num_seeds` times, and measure it.

    Args:
      problem: its family, network and `config.eval_epsilon`; its other settings are not used
        (the oracle's own are in `budget`).
      init: network variables every learner starts from.
      tasks: task parameters with a leading `[T]` axis.
      key: consumed; split per (seed, task) into a training and an evaluation key.
      num_seeds: S, independent learners per task.
      budget: how each learner trains and stops.

    Returns:
      The `OracleRun` over `[S * T]` (seed-major) learners, returns measured on `problem.config.num_envs`
      fresh episodes.
    """
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, num_seeds * num_tasks)
    tasks = jax.tree.map(lambda x: jnp.tile(x, (num_seeds,) + (1,) * (x.ndim - 1)), tasks)
    grid = np.array([(g, lr) for g in budget.gammas for lr in budget.lrs], np.float32)  # [G, 2]
    gammas, lrs = jnp.asarray(grid[:, 0]), jnp.asarray(grid[:, 1])

    def one(task, k):
        k_train, k_eval = jax.random.split(k)
        nets, curves, rounds = jax.vmap(lambda g, lr, kg: train_on_task(problem, init, task, kg, budget, g, lr))(
            gammas, lrs, jax.random.split(k_train, len(grid)))
        choice = jnp.argmax(jnp.nanmax(curves, axis=1))
        net = jax.tree.map(lambda x: x[choice], nets)
        return (greedy_return(problem, net, task, k_eval, problem.config.num_envs), curves[choice], rounds[choice],
                gammas[choice])

    run = jax.jit(lambda t, k: jax.lax.map(lambda tk: one(*tk), (t, k), batch_size=budget.task_batch))(tasks, keys)
    return OracleRun(*(np.asarray(x) for x in run))
