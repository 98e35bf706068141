"""What the off-policy meta-learners share (pearl, mql): a pool of training tasks drawn once per run,
each with its own flashbax replay in the learner state, and the meta-step that collects on some
of them and then takes TD steps on batches replayed from others.

A meta-step: draw `num_tasks` pool tasks without replacement, collect on each (the learner's
`collect_one`), add what was collected to their replays (and whatever else the learner's `record`
keeps), then `gradient_steps` optimiser steps, each on `num_tasks` pool tasks drawn anew, the
mean of the learner's per-task gradients (`loss_one`) over the tasks whose replay holds data. The
target network is refreshed every `target_update_period` meta-steps. Per-task work is split over
the devices of the mesh's `task` axis, `task_batch` tasks at a time on each.
"""

from typing import Any, Callable

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
import optax

from metaq_jax import distributed
from metaq_jax.algos.base import task_batch
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import MetaState, Metrics, Transition, UpdateFn

CollectFn = Callable[[Any, tuple], tuple[Transition, tuple[chex.Array, chex.Array]]]
"""`collect_one((params, learner_state, step), (pool index, key)) -> (data [C], (pre_return, post_return))`."""
LossFn = Callable[[Any, tuple], tuple[Any, tuple[chex.Array, chex.Array, chex.Array]]]
"""`loss_one((params, target_params, learner_state), (pool index, key)) -> (grad, (weight, meta_loss, support_loss))`:
the gradient already multiplied by the weight (0 where the task's replay is empty)."""


def lenient(buffer: Any) -> Any:
    """`buffer` whose functions trace with implicit rank promotion allowed: flashbax relies on it,
    and a user (or our test suite) may set `jax_numpy_rank_promotion` to raise.

    Args:
      buffer (Any): a flashbax buffer (`init`, `add`, `sample`, `can_sample`).

    Returns:
      (Any): the same buffer with each function wrapped.
    """
    def wrapped(fn):
        def call(*args):
            with jax.numpy_rank_promotion("allow"):
                return fn(*args)
        return call

    return buffer.replace(**{name: wrapped(getattr(buffer, name)) for name in ("init", "add", "sample", "can_sample")})


def replay_capacity(config: MetaConfig, family: TaskFamily, whole_collections: bool = False) -> int:
    """Each pool task's replay capacity: `replay_size` items, or with `whole_collections` the largest
    multiple of one collection that fits in them (so collections never share their slots).

    Args:
      config: its `replay_size` and `num_envs` are used.
      family: its episode length H: one collection adds H × `num_envs` items at once.
      whole_collections: round down to whole collections.

    Returns:
      (int): the capacity, in items.

    Raises:
      InputError: `replay_size` cannot hold one collection.
    """
    collection = family.episode_length * config.num_envs
    if config.replay_size < collection:
        raise InputError(f"MetaConfig.replay_size = {config.replay_size}: must hold one collection, "
                         f"{family.episode_length} steps ({family.name}'s episode) × num_envs {config.num_envs} "
                         f"= {collection} transitions")
    return config.replay_size - config.replay_size % collection if whole_collections else config.replay_size


def make_replay(config: MetaConfig, family: TaskFamily, whole_collections: bool = False) -> Any:
    """Each pool task's replay: a flashbax item buffer of `replay_capacity` items, sampled `batch_size` at a time.

    Args:
      config: its `replay_size`, `batch_size` and `num_envs` are used.
      family: its episode length.
      whole_collections: as `replay_capacity`'s.

    Returns:
      (Any): the (lenient) flashbax buffer.

    Raises:
      InputError: `replay_size` cannot hold one collection.
    """
    return lenient(fbx.make_item_buffer(max_length=replay_capacity(config, family, whole_collections), min_length=1,
                                        sample_batch_size=config.batch_size, add_batches=True))


def flat(transitions: Any) -> Any:
    """`[L, M, ...]` leaves as `[L × M, ...]`: a rollout as replay items.

    Args:
      transitions (Any): a pytree of `[L, M, ...]` arrays.

    Returns:
      (Any): the same pytree with the two leading axes merged.
    """
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), transitions)


def example_item(obs: chex.Array) -> Transition:
    """A zero transition (no batch axis) whose observations are shaped like `obs`: a replay's item.

    Args:
      obs: `[*obs]` an observation (its shape and dtype are used).

    Returns:
      The `Transition`.
    """
    return Transition(obs=jnp.zeros_like(obs), action=jnp.zeros((), jnp.int32), reward=jnp.zeros(()),
                      next_obs=jnp.zeros_like(obs), terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool))


def zeros(item: Any, *leading: int) -> Any:
    """`item`'s structure with the leading axes `leading`, every leaf zero.

    Args:
      item (Any): a pytree of arrays (e.g. `example_item`).
      *leading: the new leading axes, e.g. `L, M`.

    Returns:
      (Any): the pytree of zeros.
    """
    return jax.tree.map(lambda x: jnp.zeros((*leading, *x.shape), x.dtype), item)


def init_pool(family: TaskFamily, config: MetaConfig, replay: Any, key: chex.PRNGKey, item: Any) -> dict:
    """The pool at a run's start: `task_pool` training tasks and an empty replay for each.

    Args:
      family: draws the tasks from its training split.
      config: its `task_pool` is used.
      replay: the flashbax buffer (`make_replay`).
      key: consumed, to draw the tasks.
      item (Any): an example replay item (no batch axis).

    Returns:
      `{"tasks": EnvParams[N], "replay": flashbax state [N]}`.
    """
    return {"tasks": family.train_tasks(key, config.task_pool),
            "replay": jax.vmap(lambda _: replay.init(item))(jnp.arange(config.task_pool))}


def task_replay(learner_state: dict, index: chex.Array) -> Any:
    """Pool task `index`'s replay state.

    Args:
      learner_state: the pool, `{"replay": flashbax state [N], ...}`.
      index: `[]` int, a pool index.

    Returns:
      The flashbax state of that task's replay (no pool axis).
    """
    return jax.tree.map(lambda x: x[index], learner_state["replay"])


def over_tasks(config: MetaConfig, fn: Callable, shared: Any, per_task: Any) -> Any:
    """`fn(shared, x)` for each of the `[T]` rows `x` of `per_task`, split over the devices of the
    mesh's `task` axis and `task_batch` at a time on each.

    Args:
      config: its `task_batch` is used.
      fn: `fn(shared, x) -> y` for one task.
      shared (Any): what every task reads (parameters, the learner state).
      per_task (Any): a pytree whose leaves have a leading `[T]` axis.

    Returns:
      (Any): `y` stacked `[T, ...]`, in the order of `per_task`.
    """
    groups = distributed.task_groups()
    split = jax.tree.map(lambda x: x.reshape(groups, -1, *x.shape[1:]), per_task)

    def group(shared, xs):
        size = jax.tree.leaves(xs)[0].shape[0]
        return jax.lax.map(lambda x: fn(shared, x), xs, batch_size=task_batch(config, size))

    out = jax.vmap(group, in_axes=(None, 0), axis_name="task")(shared, distributed.along_tasks(split))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), out)


def offpolicy_update(config: MetaConfig, optimizer: optax.GradientTransformation, replay: Any,
                     collect_one: CollectFn, loss_one: LossFn,
                     record: Callable[[dict, chex.Array, Any], dict] | None = None) -> UpdateFn:
    """The meta-step of an off-policy learner (module docstring).

    Args:
      config: its `task_pool`, `num_tasks`, `gradient_steps` and `target_update_period` are used.
      optimizer: the outer optimiser of the whole parameters.
      replay: the flashbax buffer of each pool task.
      collect_one: one pool task's collection.
      loss_one: one pool task's weighted gradient and scalars.
      record: `record(learner_state, picked [T], data [T, C]) -> learner_state`, what the learner keeps
        of a collection besides the replay (e.g. pearl's recent context); None: nothing.

    Returns:
      `update(state, key) -> (state, Metrics)`, jit-able; `pre_return` and `post_return` are the
      collection's, the losses the gradient steps' mean.
    """
    def pick(key):
        return jax.random.choice(key, config.task_pool, (config.num_tasks,), replace=False)

    def update(state: MetaState, key: chex.PRNGKey) -> tuple[MetaState, Metrics]:
        k_pick, k_run, k_grad = jax.random.split(key, 3)
        picked = pick(k_pick)
        data, (pre_return, post_return) = over_tasks(
            config, collect_one, (state.params, state.learner_state, state.step),
            (picked, jax.random.split(k_run, config.num_tasks)))
        ls = state.learner_state
        added = jax.vmap(replay.add)(jax.tree.map(lambda x: x[picked], ls["replay"]), data)
        ls = {**ls, "replay": jax.tree.map(lambda all_, new: all_.at[picked].set(new), ls["replay"], added)}
        if record is not None:
            ls = record(ls, picked, data)

        def gradient_step(carry, step_key):
            params, opt_state = carry
            k_tasks, k_each = jax.random.split(step_key)
            grads, (weights, values, support) = over_tasks(
                config, loss_one, (params, state.target_params, ls),
                (pick(k_tasks), jax.random.split(k_each, config.num_tasks)))
            total = jnp.maximum(jnp.sum(weights), 1.0)
            grad = jax.tree.map(lambda g: jnp.sum(g, axis=0) / total, grads)
            updates, opt_state = optimizer.update(grad, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (jnp.sum(weights * values) / total, jnp.sum(weights * support) / total,
                                         optax.tree.norm(grad))

        (params, opt_state), (values, support, norms) = jax.lax.scan(
            gradient_step, (state.params, state.opt_state), jax.random.split(k_grad, config.gradient_steps))
        step = state.step + 1
        target = optax.periodic_update(params, state.target_params, step, config.target_update_period)
        metrics = Metrics(meta_loss=jnp.mean(values), support_loss=jnp.mean(support),
                          pre_return=jnp.mean(pre_return), post_return=jnp.mean(post_return), grad_norm=norms[-1])
        return MetaState(params, target, opt_state, step, ls), metrics

    return update
