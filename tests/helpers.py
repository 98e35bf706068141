"""Small shared pieces of the tests."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

import metaq_jax as mq
from metaq_jax.tasks.bandit import make_bandit

# compile options for a test whose result, not its speed, matters: on top of conftest's backend level 0,
# LLVM's expensive passes off
FAST_COMPILE = {"xla_llvm_disable_expensive_passes": True}


def flat(tree) -> np.ndarray:
    """Every leaf of `tree`, on the host, raveled and concatenated in leaf order (empty for no leaves)."""
    return np.concatenate([np.zeros(0)] + [np.ravel(x) for x in jax.tree.leaves(jax.device_get(tree))])


TINY = dict(num_tasks=3, num_envs=2, rollout_length=12, inner_steps=2, hidden_sizes=(16,),
            target_update_period=2)


def tiny_config(**changes) -> mq.MetaConfig:
    return mq.MetaConfig(**{**TINY, **changes})


def updates_by_task_batch(config: mq.MetaConfig, task_batches, steps: int = 3) -> dict:
    """`steps` jitted updates of `config`'s learner for each `task_batch`, from seed 0.

    Returns `{"init": the initial state, task_batch: (learner, state, [Metrics], jitted update)}`."""
    out = {}
    for task_batch in task_batches:
        learner = mq.make_meta_learner(config.replace(task_batch=task_batch))
        state, run_key = mq.training.initial_state(learner, 0)
        out["init"] = state
        update = jax.jit(learner.update)
        history = []
        for step in range(steps):
            state, metrics = update(state, mq.training.step_key(run_key, step))
            history.append(metrics)
        out[task_batch] = (learner, state, history, update)
    return out


def assert_compiled_once_and_batched_equal(out: dict, batched: int) -> None:
    """From `updates_by_task_batch(config, (1, batched))`: one trace for all the updates, the
    parameters moved, and the state and metrics of `task_batch=batched` equal to one task at a time."""
    (_, one, one_history, update), (_, other, other_history, _) = out[1], out[batched]
    assert update._cache_size() == 1
    moved = [float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(out["init"].params))]
    assert max(moved) > 1e-4
    assert_trees_close(one, other)
    for a, b in zip(one_history, other_history, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    assert np.isfinite(np.array(one_history)).all()


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def trees_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def device_env(devices: int, **extra: str) -> dict[str, str]:
    """This process's environment for a subprocess with `devices` simulated CPU devices: the test
    run's XLA flags (conftest) kept, any device count of theirs replaced, `extra` added."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    return {**os.environ, "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]), **extra}


@struct.dataclass
class PointParams(environment.EnvParams):
    goal: float = 0.5
    max_steps_in_episode: int = 6


class Point(environment.Environment):
    """A point on a line moved by 0.1·a, a ∈ [−1, 1]; reward −|x − goal| after the move."""

    @property
    def default_params(self):
        return PointParams()

    def step_env(self, key, state, action, params):
        x = state.x + 0.1 * jnp.clip(action[0], -1, 1)
        state = PointState(x=x, time=state.time + 1)
        return jnp.stack([x]), state, -jnp.abs(x - params.goal), jnp.array(False), {}

    def reset_env(self, key, params):
        return jnp.zeros(1), PointState(x=jnp.zeros(()), time=0)

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-jnp.inf, jnp.inf, (1,), jnp.float32)


@struct.dataclass
class PointState(environment.EnvState):
    x: jax.Array
    time: int


def make_point(**kw):
    return mq.TaskFamily("test-point", Point(), lambda k: PointParams(goal=jax.random.uniform(k, (), minval=-0.5,
                                                                                              maxval=0.5)),
                         description="a point on a line moved toward a goal ~ U[-0.5, 0.5] (test)", **kw)


mq.register_family("test-point", make_point, overwrite=True)


def make_test_bandit(**kw):
    """bandit-k5-n10 with the 40 held-out tasks of the other families, not a grid cell's 1000: a
    test's meta-test plays 40 tasks' trials (compiling its programs still costs what it did)."""
    return dataclasses.replace(make_bandit(5, 10, **kw), name="test-bandit")


mq.register_family("test-bandit", make_test_bandit, overwrite=True)
