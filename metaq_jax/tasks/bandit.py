"""Bandits: `bandit` (Bernoulli arms, means ~ U[0, 1]) and `bandit-gaussian` (means ~ N(0, 1)).

`bandit` with k ∈ {5, 10, 50} arms and n ∈ {10, 100, 500} pulls is the RL² bandit grid; those
nine are also registered by name, `bandit-k{k}-n{n}` (see `make_bandit_grid`).

The arm means live in the params, so they stay fixed for the whole trial (gymnax's own bandit
resamples them at every reset). The observation is the RL² input: the last action one-hot,
the last reward and the fraction of the trial elapsed, `[k + 2]`.
"""

from typing import Any, Callable

import dataclasses

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.tasks.family import TaskFamily, check_positive_int


@struct.dataclass
class EnvState(environment.EnvState):
    """Within a trial: the last pull's arm and reward, and the pulls made so far (`time`)."""

    last_action: chex.Array  # int32 scalar; -1 before the first pull
    last_reward: chex.Array  # float32 scalar
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    """One task: the arm means `[k]`, fixed for the trial, and the trial's n pulls."""

    arm_means: chex.Array = struct.field(default_factory=lambda: jnp.full(5, 0.5, jnp.float32))
    max_steps_in_episode: int = 100  # n pulls per trial


class BernoulliBandit(environment.Environment[EnvState, EnvParams]):
    """`num_arms` arms; pulling arm a pays 1 with probability `arm_means[a]`, else 0.

    Args:
      num_arms: k, the number of arms (and of actions).
    """

    def __init__(self, num_arms: int = 5):
        super().__init__()
        self.num_arms = num_arms

    @property
    def default_params(self) -> EnvParams:
        """A task with every arm's mean 0.5 and 100 pulls.

        Returns:
          `EnvParams` with `arm_means[num_arms]`.
        """
        return EnvParams(arm_means=jnp.full(self.num_arms, 0.5, jnp.float32))

    def pull(self, key: chex.PRNGKey, mean: chex.Array) -> chex.Array:
        """The reward of one pull of an arm whose mean is `mean`.

        Args:
          key: draws the reward.
          mean: the arm's mean, a scalar in [0, 1].

        Returns:
          1.0 with probability `mean`, else 0.0; a float32 scalar.
        """
        return jax.random.bernoulli(key, mean).astype(jnp.float32)

    def step_env(self, key: chex.PRNGKey, state: EnvState, action: chex.Array,
                 params: EnvParams) -> tuple[chex.Array, EnvState, chex.Array, chex.Array, dict]:
        """Pull arm `action`.

        Args:
          key: draws the reward.
          state: the trial so far.
          action: the arm, an int scalar in [0, k).
          params: the task.

        Returns:
          `(obs[k + 2], state, reward, done, info)`; `done` is always False (gymnax ends the
          trial at `max_steps_in_episode`).
        """
        reward = self.pull(key, params.arm_means[action])
        state = EnvState(last_action=jnp.asarray(action, jnp.int32), last_reward=reward, time=state.time + 1)
        return self._obs(state, params), state, reward, jnp.array(False), {}

    def reset_env(self, key: chex.PRNGKey, params: EnvParams) -> tuple[chex.Array, EnvState]:
        """Start a trial: no pull yet (last action −1, last reward 0).

        Args:
          key: unused; the start is deterministic.
          params: the task.

        Returns:
          `(obs[k + 2], state)`.
        """
        del key
        state = EnvState(last_action=jnp.array(-1, jnp.int32), last_reward=jnp.array(0.0), time=0)
        return self._obs(state, params), state

    def _obs(self, state: EnvState, params: EnvParams) -> chex.Array:
        one_hot = jax.nn.one_hot(state.last_action, self.num_arms, dtype=jnp.float32)
        elapsed = state.time / params.max_steps_in_episode
        return jnp.concatenate([one_hot, jnp.stack([state.last_reward, elapsed]).astype(jnp.float32)])

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        """Whether the trial has terminated: never, it only ends by its pull budget (truncation).

        Args:
          state: the trial so far.
          params: the task.

        Returns:
          False, a bool scalar.
        """
        return jnp.array(False)  # a trial only ends by its pull budget (truncation)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"BernoulliBandit"`.
        """
        return "BernoulliBandit"

    @property
    def num_actions(self) -> int:
        """The number of actions.

        Returns:
          k, one action per arm.
        """
        return self.num_arms

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """The arms.

        Args:
          params: unused.

        Returns:
          `Discrete(k)`.
        """
        return spaces.Discrete(self.num_arms)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The RL² input: last action one-hot, last reward, fraction of the trial elapsed.

        Args:
          params: unused.

        Returns:
          `Box(0, 1, [k + 2])`.
        """
        return spaces.Box(0.0, 1.0, (self.num_arms + 2,), jnp.float32)


class GaussianBandit(BernoulliBandit):
    """`num_arms` arms; pulling arm a pays `arm_means[a]` plus unit-variance Gaussian noise."""

    def pull(self, key: chex.PRNGKey, mean: chex.Array) -> chex.Array:
        """The reward of one pull of an arm whose mean is `mean`.

        Args:
          key: draws the noise.
          mean: the arm's mean, a scalar.

        Returns:
          `mean` + N(0, 1), a float32 scalar.
        """
        return mean + jax.random.normal(key, (), jnp.float32)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"GaussianBandit"`.
        """
        return "GaussianBandit"

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """Last action one-hot, last reward (unbounded), fraction of the trial elapsed.

        Args:
          params: unused.

        Returns:
          `Box(-inf, inf, [k + 2])`.
        """
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_arms + 2,), jnp.float32)


def _bandit_family(name: str, env: BernoulliBandit, draw_means: Callable, num_pulls: int,
                   description: str, **family_kwargs: Any) -> TaskFamily:
    """A bandit family whose task is `draw_means(key, (num_arms,), float32)` and `num_pulls`."""
    for arg, value in (("num_arms", env.num_arms), ("num_pulls", num_pulls)):
        check_positive_int(name, arg, value)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        means = draw_means(key, (env.num_arms,), jnp.float32)
        return EnvParams(arm_means=means, max_steps_in_episode=num_pulls)

    return TaskFamily(name=name, env=env, sample_params=sample_params, description=description,
                      oracle_return=_best_arm_return, num_states=0, **family_kwargs)


def _best_arm_return(params: EnvParams) -> chex.Array:
    """The optimal expected return of a trial: every pull on the best arm."""
    return params.max_steps_in_episode * jnp.max(params.arm_means)


def make_bandit(num_arms: int = 5, num_pulls: int = 100, **family_kwargs: Any) -> TaskFamily:
    """The `bandit` family: k = `num_arms` arms, n = `num_pulls` pulls per trial.

    Args:
      num_arms: k, the number of arms.
      num_pulls: n, pulls per trial (the episode length).
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family; each task's arm means ~ U[0, 1], with the best arm's expected return as
      its exact `oracle_return`.

    Raises:
      InputError: `num_arms` or `num_pulls` is not a positive int.
    """
    return _bandit_family(
        "bandit", BernoulliBandit(num_arms), jax.random.uniform, num_pulls,
        f"{num_arms}-armed Bernoulli bandit, arm means ~ U[0,1] per task, {num_pulls} pulls",
        **family_kwargs)


def make_gaussian_bandit(num_arms: int = 5, num_pulls: int = 100, **family_kwargs: Any) -> TaskFamily:
    """The `bandit-gaussian` family: arm means ~ N(0, 1) per task, unit-variance rewards.

    Args:
      num_arms: k, the number of arms.
      num_pulls: n, pulls per trial (the episode length).
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family, with the best arm's expected return as its exact `oracle_return`.

    Raises:
      InputError: `num_arms` or `num_pulls` is not a positive int.
    """
    return _bandit_family(
        "bandit-gaussian", GaussianBandit(num_arms), jax.random.normal, num_pulls,
        f"{num_arms}-armed Gaussian bandit, arm means ~ N(0,1) per task, unit variance, "
        f"{num_pulls} pulls",
        **family_kwargs)


GRID_TEST_TASKS = 1000
"""Held-out tasks of a bandit-grid cell. A task's best arm alone varies its total by ~2 over 10
pulls, so 40 tasks would leave ±0.2 of test-set luck in a cell whose strategies differ by 0.1."""


def make_bandit_grid(num_arms: int, num_pulls: int, **family_kwargs: Any) -> TaskFamily:
    """A cell `bandit-k{num_arms}-n{num_pulls}` of the RL² bandit grid (Duan et al. 2016).

    Args:
      num_arms: k.
      num_pulls: n, pulls per trial.
      **family_kwargs: passed to `TaskFamily` (`num_test_tasks` defaults to `GRID_TEST_TASKS`).

    Returns:
      `make_bandit(num_arms, num_pulls)` under the cell's name.

    Raises:
      InputError: `num_arms` or `num_pulls` is not a positive int.
    """
    family = make_bandit(num_arms, num_pulls, **{"num_test_tasks": GRID_TEST_TASKS, **family_kwargs})
    return dataclasses.replace(family, name=f"bandit-k{num_arms}-n{num_pulls}")
