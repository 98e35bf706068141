"""Classic-control physics with per-task constants: `acrobot`, `mountaincar`, `pendulum`.

Each task draws its physical constants once, ~ U[low, high] (defaults 0.5×–1.5× of the gym
values), and keeps them for the whole trial: gymnax's reset only resamples the start state.
Pendulum's continuous torque is discretised into evenly spaced levels.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from gymnax.environments.classic_control import acrobot, mountain_car, pendulum

from metaq_jax.tasks.family import TaskFamily, check_positive_int, check_range, uniform

Range = tuple[float, float]


def _check_ranges(family: str, ranges: dict[str, Range]) -> None:
    for name, bounds in ranges.items():
        check_range(family, name, bounds)


def acrobot_params(length_1: float = 1.0, length_2: float = 1.0, mass_1: float = 1.0,
                   mass_2: float = 1.0, **kw: Any) -> acrobot.EnvParams:
    """Acrobot parameters with each link's centre of mass recomputed at half its length.

    gymnax keeps `link_com_pos_*` beside `link_length_*`; Acrobot-v1's 0.5 is half of its 1.0
    link. Its one `link_moi` is shared by both links, so it stays at Acrobot-v1's 1.0.

    Args:
      length_1: the first link's length.
      length_2: the second link's length.
      mass_1: the first link's mass.
      mass_2: the second link's mass.
      **kw: any other field of gymnax's `acrobot.EnvParams`.

    Returns:
      The `acrobot.EnvParams`.
    """
    return acrobot.EnvParams(
        link_length_1=length_1, link_length_2=length_2, link_mass_1=mass_1, link_mass_2=mass_2,
        link_com_pos_1=length_1 / 2, link_com_pos_2=length_2 / 2, **kw)


def make_acrobot(length: Range = (0.5, 1.5), mass: Range = (0.5, 1.5),
                 **family_kwargs: Any) -> TaskFamily:
    """The `acrobot` family: each link's length and mass ~ U[low, high] per task.

    Args:
      length: `(low, high)` of each link's length, drawn separately for the two links.
      mass: `(low, high)` of each link's mass, drawn separately for the two links.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: gymnax's `Acrobot` with tasks from `acrobot_params`.

    Raises:
      InputError: a range is not `(low, high)` with `0 < low <= high`.
    """
    _check_ranges("acrobot", {"length": length, "mass": mass})

    def sample_params(key: chex.PRNGKey) -> acrobot.EnvParams:
        k_l, k_m = jax.random.split(key)
        lengths, masses = uniform(k_l, length, (2,)), uniform(k_m, mass, (2,))
        return acrobot_params(length_1=lengths[0], length_2=lengths[1],
                              mass_1=masses[0], mass_2=masses[1])

    return TaskFamily(name="acrobot", env=acrobot.Acrobot(), sample_params=sample_params,
                      description="Acrobot-v1 with per-task link lengths and masses",
                      **family_kwargs)


def make_mountaincar(force: Range = (0.0005, 0.0015), gravity: Range = (0.00125, 0.00375),
                     **family_kwargs: Any) -> TaskFamily:
    """The `mountaincar` family: engine force and gravity ~ U[low, high] per task.

    Args:
      force: `(low, high)` of the engine's force.
      gravity: `(low, high)` of gravity.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family: gymnax's `MountainCar` (3 actions).

    Raises:
      InputError: a range is not `(low, high)` with `0 < low <= high`.
    """
    _check_ranges("mountaincar", {"force": force, "gravity": gravity})

    def sample_params(key: chex.PRNGKey) -> mountain_car.EnvParams:
        k_f, k_g = jax.random.split(key)
        return mountain_car.EnvParams(force=uniform(k_f, force), gravity=uniform(k_g, gravity))

    return TaskFamily(name="mountaincar", env=mountain_car.MountainCar(),
                      sample_params=sample_params,
                      description="MountainCar-v0 with per-task engine force and gravity",
                      **family_kwargs)


class DiscretePendulum(pendulum.Pendulum):
    """Pendulum-v1 whose action `i` applies torque `levels[i] * max_torque`, `levels` in [-1, 1].

    Args:
      num_torques: the number of actions, evenly spaced levels from −1 to 1.
    """

    def __init__(self, num_torques: int = 5):
        super().__init__()
        self.levels = jnp.linspace(-1.0, 1.0, num_torques, dtype=jnp.float32)

    def step_env(self, key: chex.PRNGKey, state: pendulum.EnvState, action: chex.Array,
                 params: pendulum.EnvParams) -> tuple[chex.Array, pendulum.EnvState, chex.Array,
                                                      chex.Array, dict]:
        """Apply the torque of discrete action `action`, then gymnax's Pendulum step.

        Args:
          key: passed to gymnax's step.
          state: the pendulum's state.
          action: the torque's index, an int scalar in [0, num_torques).
          params: the task.

        Returns:
          `(obs[3], state, reward, done, info)`, as gymnax's Pendulum.
        """
        return super().step_env(key, state, self.levels[action] * params.max_torque, params)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"DiscretePendulum"`.
        """
        return "DiscretePendulum"

    @property
    def num_actions(self) -> int:
        """The number of actions.

        Returns:
          `num_torques`.
        """
        return self.levels.shape[0]

    def action_space(self, params: pendulum.EnvParams | None = None) -> spaces.Discrete:
        """The torque levels.

        Args:
          params: unused.

        Returns:
          `Discrete(num_torques)`.
        """
        return spaces.Discrete(self.num_actions)


def make_pendulum(mass: Range = (0.5, 1.5), length: Range = (0.5, 1.5), gravity: Range = (5.0, 15.0),
                  num_torques: int = 5, **family_kwargs: Any) -> TaskFamily:
    """The `pendulum` family: mass, length and gravity ~ U[low, high] per task.

    `num_torques` (≥ 2) evenly spaced torques from −max_torque to +max_torque are the actions.

    Args:
      mass: `(low, high)` of the pendulum's mass.
      length: `(low, high)` of its length.
      gravity: `(low, high)` of g.
      num_torques: the number of actions.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family: `DiscretePendulum(num_torques)`.

    Raises:
      InputError: a range is not `(low, high)` with `0 < low <= high`, or `num_torques` is not
        an int ≥ 2.
    """
    _check_ranges("pendulum", {"mass": mass, "length": length, "gravity": gravity})
    check_positive_int("pendulum", "num_torques", num_torques, minimum=2)

    def sample_params(key: chex.PRNGKey) -> pendulum.EnvParams:
        k_m, k_l, k_g = jax.random.split(key, 3)
        return pendulum.EnvParams(m=uniform(k_m, mass), l=uniform(k_l, length),
                                  g=uniform(k_g, gravity))

    return TaskFamily(name="pendulum", env=DiscretePendulum(num_torques),
                      sample_params=sample_params,
                      description=f"Pendulum-v1 with per-task mass, length and gravity, "
                                  f"{num_torques} discrete torques",
                      **family_kwargs)
