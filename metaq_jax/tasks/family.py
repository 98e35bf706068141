"""`TaskFamily`: a gymnax environment plus a distribution over its parameters.

One task is one `EnvParams` value, held fixed for the whole trial: families keep everything
that defines the task (a goal, arm means, physics) in the params, never resampled at reset.

The train/test split is by task index. Task `i` is `sample_params(fold_in(key(split_seed), i))`;
indices `0 .. num_test_tasks-1` are the test tasks and meta-training only ever draws indices
from `num_test_tasks` upward, so no test task is seen in meta-training.
"""

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from metaq_jax.errors import InputError
from metaq_jax.types import EnvParams

if TYPE_CHECKING:  # importing gymnax builds arrays, which starts JAX's backend
    from gymnax.environments import environment

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
      test_params: a fixed batch `[N]` of held-out tasks, returned by `test_tasks()` instead of
        the indexed ones: a paper's test set, or the held-out rows of a finite task set, each
        once (`finite_tasks`); `num_test_tasks` may be at most N.
      oracle_return: `task -> []` the exact optimal expected return of one episode, where known.
      num_states: for tabular families, S: observations begin with a one-hot state `[S]`
        (0: a single state, as in a bandit); `None` for families with no tabular form.
    """

    name: str
    env: "environment.Environment"
    sample_params: Callable[[chex.PRNGKey], EnvParams]
    num_test_tasks: int = 40
    split_seed: int = 0
    description: str = ""
    test_params: EnvParams | None = None
    oracle_return: Callable[[EnvParams], chex.Array] | None = None
    num_states: int | None = None

    def __post_init__(self):
        if self.test_params is not None:
            rows = jax.tree.leaves(self.test_params)[0].shape[0]
            if not 1 <= self.num_test_tasks <= rows:
                raise InputError(f"{self.name} num_test_tasks = {self.num_test_tasks}: the family holds out "
                                 f"{rows} tasks; give 1 to {rows}")

    @property
    def num_actions(self) -> int:
        """The environment's number of discrete actions.

        Returns:
          A, `env.num_actions`.
        """
        return self.env.num_actions

    @property
    def continuous_actions(self) -> bool:
        """Whether the actions are continuous (a `Box`) rather than discrete.

        Returns:
          True when the action space has a shape, e.g. `(A,)` torques; False for a `Discrete`
          space, or an environment that gives only `num_actions`.
        """
        try:
            space = self.env.action_space(self.default_params)
        except NotImplementedError:  # gymnax's default: a user's environment may define num_actions alone
            return False
        return len(space.shape) > 0

    @functools.cached_property
    def episode_length(self) -> int:
        """H, the most steps an episode of the family's tasks lasts (its time limit).

        Returns:
          The largest `max_steps_in_episode` of the held-out tasks (a task sets its own, e.g. a
          bandit's pulls), or of the default params when the tasks carry none.
        """
        with jax.ensure_compile_time_eval():  # a concrete number even when first asked inside a trace
            limit = getattr(self.test_tasks(), "max_steps_in_episode", None)
        if limit is None:
            return int(self.default_params.max_steps_in_episode)
        return int(np.max(np.asarray(limit)))

    @property
    def default_params(self) -> EnvParams:
        """The environment's default parameters (e.g. to build a network from one observation).

        Returns:
          `env.default_params`, one task with no batch axis.
        """
        return self.env.default_params

    def tasks(self, indices: chex.Array) -> EnvParams:
        """Task parameters for integer `indices[N]`; every leaf gets a leading `[N]` axis.

        Args:
          indices: `[N]` int task indices; the same index always gives the same task.

        Returns:
          `EnvParams` with a leading `[N]` axis.
        """
        base = jax.random.key(self.split_seed)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)
        return jax.vmap(self.sample_params)(keys)

    def sample_train_indices(self, key: chex.PRNGKey, num: int) -> chex.Array:
        """`[num]` task indices drawn uniformly from the training range.

        Args:
          key: consumed.
          num: how many indices.

        Returns:
          `[num]` int32 in `[num_test_tasks, 2³¹ - 1)`.
        """
        return jax.random.randint(key, (num,), self.num_test_tasks, _MAX_INDEX, dtype=jnp.int32)

    def train_tasks(self, key: chex.PRNGKey, num: int) -> EnvParams:
        """A batch of `[num]` training tasks; the key is consumed.

        Args:
          key: consumed, to draw the task indices.
          num: how many tasks.

        Returns:
          `EnvParams` with a leading `[num]` axis.
        """
        return self.tasks(self.sample_train_indices(key, num))

    def test_tasks(self, num: int | None = None) -> EnvParams:
        """The first `num` (default: all `num_test_tasks`) held-out tasks, `[num]` leading axis.

        Args:
          num: how many, from 1 to `num_test_tasks`; None for all of them.

        Returns:
          `EnvParams` with a leading `[num]` axis: rows of `test_params` where given, else tasks
          `0 .. num-1`.

        Raises:
          InputError: `num` is not between 1 and `num_test_tasks`.
        """
        num = self.num_test_tasks if num is None else num
        if not 1 <= num <= self.num_test_tasks:
            raise InputError(f"num = {num}: must be between 1 and num_test_tasks = {self.num_test_tasks}")
        if self.test_params is not None:
            return jax.tree.map(lambda x: x[:num], self.test_params)
        return self.tasks(jnp.arange(num, dtype=jnp.int32))


def uniform(key: chex.PRNGKey, bounds: tuple[float, float], shape=()) -> chex.Array:
    """A float32 draw from U[low, high]; a degenerate range gives the constant.

    Args:
      key: consumed.
      bounds: `(low, high)`.
      shape (tuple[int, ...]): the shape of the draw; `()` for a scalar.

    Returns:
      float32 of shape `shape`.
    """
    low, high = bounds
    return jax.random.uniform(key, shape, jnp.float32, low, high)


def hold_out(choices: np.ndarray, every: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Split an enumerated finite task set `choices[N, ...]` into (train, test) rows.

    Every `every`-th row is held out, so test tasks are spread over the whole set.

    Args:
      choices: `[N, ...]` the enumerated tasks.
      every: the spacing of held-out rows: rows 0, `every`, `2 * every`, ... are the test rows.

    Returns:
      `(train, test)`, the rows of `choices` not held out and those held out, in order.
    """
    is_test = np.arange(len(choices)) % every == 0
    return choices[~is_test], choices[is_test]


def finite_tasks(make_params: Callable[[chex.Array], EnvParams], rows: np.ndarray,
                 **family_kwargs: Any) -> dict[str, Any]:
    """The `TaskFamily` fields of a finite task set: every 5th row held out (`hold_out`) and
    tested once each, the other rows drawn uniformly for training.

    Args:
      make_params: `row[...] -> EnvParams` of one task.
      rows: `[N, ...]` the enumerated tasks.
      **family_kwargs: the caller's `TaskFamily` arguments, which win (e.g. fewer `num_test_tasks`).

    Returns:
      `{"sample_params", "test_params" (the held-out rows, [N_test]), "num_test_tasks", **family_kwargs}`.
    """
    train, test = hold_out(rows)
    return {"sample_params": lambda key: make_params(choose(key, train)),
            "test_params": jax.vmap(make_params)(jnp.asarray(test)), "num_test_tasks": len(test), **family_kwargs}


def choose(key: chex.PRNGKey, choices: np.ndarray) -> chex.Array:
    """One row of `choices[N, ...]`, drawn uniformly.

    Args:
      key: consumed.
      choices: `[N, ...]` the rows to choose from.

    Returns:
      `[...]` one row, as a jax array.
    """
    return jnp.asarray(choices)[jax.random.randint(key, (), 0, len(choices))]


def check_range(family: str, name: str, bounds: tuple[float, float], integer: bool = False) -> None:
    """Raise `ValueError` unless `bounds` is `(low, high)` with `0 < low <= high`.

    With `integer`, both ends must also be ints (bools are not).

    Args:
      family: the family's name, for the message.
      name: the setting's name, for the message.
      bounds: the value to check.
      integer: require both ends to be ints.

    Returns:
      None.

    Raises:
      InputError: `bounds` is not such a pair.
    """
    try:
        low, high = bounds
        valid = 0 < low <= high and (not integer or all(_is_int(v) for v in bounds))
    except (TypeError, ValueError):  # not a pair of numbers
        valid = False
    if not valid:
        kind = "integers " if integer else ""
        raise InputError(f"{family} {name} = {bounds!r}: must be (low, high) {kind}with 0 < low <= high")


def check_positive_int(family: str, name: str, value: int, minimum: int = 1) -> None:
    """Raise `ValueError` unless `value` is an int (not a bool) of at least `minimum`.

    Args:
      family: the family's name, for the message.
      name: the setting's name, for the message.
      value: the value to check.
      minimum: the least value allowed.

    Returns:
      None.

    Raises:
      InputError: `value` is not such an int.
    """
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"{family} {name} = {value!r}: must be {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
