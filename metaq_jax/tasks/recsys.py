"""`recsys`: recommending items to a user whose taste drifts.

A task is a user: a preference vector `[D]` over item features. The catalogue `[I, D]` is
shared by all users (drawn once from `catalog_seed`) and stored in every task's params.
Recommending item a earns a click ~ Bernoulli(sigmoid(preference · features[a])). Within an
episode the preference takes a small Gaussian random walk (held in the env state); every
episode starts again from the task's preference, so the task itself never changes.
Observation: the last item's features, the last click and the fraction of the episode elapsed,
`[D + 2]`.
"""

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily, check_positive_int


@struct.dataclass
class EnvState(environment.EnvState):
    """Within an episode: the drifted preference, the last item shown and its click, the step."""

    preference: chex.Array  # [D], drifts within the episode
    last_item: chex.Array  # int32 scalar; -1 before the first recommendation
    last_click: chex.Array  # float32 scalar
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    """One task, a user: the preference `[D]`, with the shared catalogue `[I, D]`."""

    preference: chex.Array = struct.field(default_factory=lambda: jnp.zeros(4, jnp.float32))  # [D]
    item_features: chex.Array = struct.field(  # [I, D]
        default_factory=lambda: jnp.zeros((10, 4), jnp.float32))
    drift_std: float = 0.02  # per-coordinate std of the preference's step-to-step change
    max_steps_in_episode: int = 50


class Recommender(environment.Environment[EnvState, EnvParams]):
    """`num_items` items with `num_features` features each; reward 1 for a click.

    Args:
      num_items: I, the catalogue's size (and the number of actions).
      num_features: D, the features of an item and the preference's size.
    """

    def __init__(self, num_items: int = 10, num_features: int = 4):
        super().__init__()
        self.num_items = num_items
        self.num_features = num_features

    @property
    def default_params(self) -> EnvParams:
        """A neutral user (preference zero) over an all-zero catalogue, 50-step sessions.

        Returns:
          `EnvParams` shaped for this catalogue.
        """
        return EnvParams(preference=jnp.zeros(self.num_features, jnp.float32),
                         item_features=jnp.zeros((self.num_items, self.num_features), jnp.float32))

    def step_env(self, key: chex.PRNGKey, state: EnvState, action: chex.Array,
                 params: EnvParams) -> tuple[chex.Array, EnvState, chex.Array, chex.Array, dict]:
        """Recommend item `action`; the user clicks or not, then the preference drifts.

        Args:
          key: draws the click and the drift.
          state: the episode so far.
          action: the item, an int scalar in [0, I).
          params: the task.

        Returns:
          `(obs[D + 2], state, click, done, info)`; `done` is always False (gymnax ends the
          session at `max_steps_in_episode`).
        """
        k_click, k_drift = jax.random.split(key)
        logit = jnp.dot(state.preference, params.item_features[action])
        click = jax.random.bernoulli(k_click, jax.nn.sigmoid(logit)).astype(jnp.float32)
        drift = params.drift_std * jax.random.normal(k_drift, (self.num_features,), jnp.float32)
        state = EnvState(preference=state.preference + drift, last_item=jnp.asarray(action, jnp.int32),
                         last_click=click, time=state.time + 1)
        return self._obs(state, params), state, click, jnp.array(False), {}

    def reset_env(self, key: chex.PRNGKey, params: EnvParams) -> tuple[chex.Array, EnvState]:
        """Start a session from the task's own preference, no item shown yet.

        Args:
          key: unused; the start is deterministic.
          params: the task.

        Returns:
          `(obs[D + 2], state)`.
        """
        del key  # every episode starts from the task's own preference
        state = EnvState(preference=params.preference, last_item=jnp.array(-1, jnp.int32),
                         last_click=jnp.array(0.0, jnp.float32), time=0)
        return self._obs(state, params), state

    def _obs(self, state: EnvState, params: EnvParams) -> chex.Array:
        shown = state.last_item >= 0  # before the first recommendation no item's features are shown
        features = jnp.where(shown, params.item_features[jnp.maximum(state.last_item, 0)], 0.0)
        elapsed = jnp.asarray(state.time / params.max_steps_in_episode, jnp.float32)
        return jnp.concatenate([features, jnp.stack([state.last_click, elapsed])])

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        """Whether the session has terminated: never, it only ends by its length (truncation).

        Args:
          state: the session so far.
          params: the task.

        Returns:
          False, a bool scalar.
        """
        return jnp.array(False)  # sessions end by their length (truncation)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"Recommender"`.
        """
        return "Recommender"

    @property
    def num_actions(self) -> int:
        """The number of actions.

        Returns:
          I, one action per item.
        """
        return self.num_items

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """The items.

        Args:
          params: unused.

        Returns:
          `Discrete(I)`.
        """
        return spaces.Discrete(self.num_items)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The last item's features, the last click and the fraction of the session elapsed.

        Args:
          params: unused.

        Returns:
          `Box(-inf, inf, [D + 2])`.
        """
        return spaces.Box(-jnp.inf, jnp.inf, (self.num_features + 2,), jnp.float32)


def make_recsys(num_items: int = 10, num_features: int = 4, episode_length: int = 50,
                preference_scale: float = 2.0, drift_std: float = 0.02, catalog_seed: int = 0,
                **family_kwargs: Any) -> TaskFamily:
    """The `recsys` family.

    Item features ~ N(0, 1); a user's preference ~ N(0, preference_scale² / D) per coordinate,
    so a click's logit has standard deviation about `preference_scale`.

    Args:
      num_items: I, the catalogue's size (the number of actions).
      num_features: D, the features of an item.
      episode_length: steps per session.
      preference_scale: about the standard deviation of a click's logit.
      drift_std: per-coordinate std of the preference's step-to-step drift within a session.
      catalog_seed: seeds the catalogue, shared by every task.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: `Recommender(num_items, num_features)`.

    Raises:
      InputError: a count is not a positive int, `catalog_seed` not an int ≥ 0, or
        `preference_scale` or `drift_std` not a finite number ≥ 0.
    """
    for name, value in (("num_items", num_items), ("num_features", num_features),
                        ("episode_length", episode_length)):
        check_positive_int("recsys", name, value)
    check_positive_int("recsys", "catalog_seed", catalog_seed, minimum=0)
    for name, value in (("preference_scale", preference_scale), ("drift_std", drift_std)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise InputError(f"recsys {name} = {value!r}: must be a finite number >= 0")
    catalog = jax.random.normal(jax.random.key(catalog_seed), (num_items, num_features), jnp.float32)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        scale = preference_scale / math.sqrt(num_features)
        preference = scale * jax.random.normal(key, (num_features,), jnp.float32)
        return EnvParams(preference=preference, item_features=catalog, drift_std=drift_std,
                         max_steps_in_episode=episode_length)

    return TaskFamily(
        name="recsys",
        env=Recommender(num_items, num_features),
        sample_params=sample_params,
        description=f"recommend 1 of {num_items} items to a user with a drifting {num_features}-d "
                    f"taste; reward a click, {episode_length}-step sessions",
        **family_kwargs,
    )
