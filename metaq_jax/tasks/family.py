"""`TaskFamily`: a gymnax environment plus a distribution over its parameters.

One task is one `EnvParams` value, held fixed for the whole trial: families keep everything
that defines the task (a goal, arm means, physics) in the params, never resampled at reset.

The train/test split is by task index. Task `i` is `sample_params(fold_in(key(split_seed), i))`;
indices `0 .. num_test_tasks-1` are the test tasks and meta-training only ever draws indices
from `num_test_tasks` upward, so no test task is seen in meta-training.
"""

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp
from gymnax.environments import environment

from metaq_jax.types import EnvParams

_MAX_INDEX = 2**31 - 1


@dataclasses.dataclass(frozen=True, eq=False)
class TaskFamily:
    """A meta-RL task family.

    Attributes:
      name: the registry name.
      env: a gymnax-style `Environment` (`reset(key, params)`, `step(key, state, action, params)`
        returning gymnax 1.0's six values, and `num_actions`).
      sample_params: `key -> EnvParams` for one task; must be `vmap`-able.
      num_test_tasks: how many held-out tasks `test_tasks()` returns.
      split_seed: seeds the task indices, and so the split.
      description: one line for listings.
    """

    name: str
    env: environment.Environment
    sample_params: Callable[[chex.PRNGKey], EnvParams]
    num_test_tasks: int = 40
    split_seed: int = 0
    description: str = ""

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    @property
    def default_params(self) -> EnvParams:
        return self.env.default_params

    def tasks(self, indices: chex.Array) -> EnvParams:
        """Task parameters for integer `indices[N]`; every leaf gets a leading `[N]` axis."""
        base = jax.random.key(self.split_seed)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)
        return jax.vmap(self.sample_params)(keys)

    def sample_train_indices(self, key: chex.PRNGKey, num: int) -> chex.Array:
        """`[num]` task indices drawn uniformly from the training range."""
        return jax.random.randint(key, (num,), self.num_test_tasks, _MAX_INDEX, dtype=jnp.int32)

    def train_tasks(self, key: chex.PRNGKey, num: int) -> EnvParams:
        """A batch of `[num]` training tasks; the key is consumed."""
        return self.tasks(self.sample_train_indices(key, num))

    def test_tasks(self, num: int | None = None) -> EnvParams:
        """The first `num` (default: all `num_test_tasks`) held-out tasks, `[num]` leading axis."""
        num = self.num_test_tasks if num is None else num
        if not 1 <= num <= self.num_test_tasks:
            raise ValueError(f"num = {num}: must be between 1 and num_test_tasks = {self.num_test_tasks}")
        return self.tasks(jnp.arange(num, dtype=jnp.int32))


def uniform(key: chex.PRNGKey, bounds: tuple[float, float], shape=()) -> chex.Array:
    """A float32 draw from U[low, high]; a degenerate range gives the constant."""
    low, high = bounds
    return jax.random.uniform(key, shape, jnp.float32, low, high)
