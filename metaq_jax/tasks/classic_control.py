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
    """
    return acrobot.EnvParams(
        link_length_1=length_1, link_length_2=length_2, link_mass_1=mass_1, link_mass_2=mass_2,
        link_com_pos_1=length_1 / 2, link_com_pos_2=length_2 / 2, **kw)


def make_acrobot(length: Range = (0.5, 1.5), mass: Range = (0.5, 1.5),
                 **family_kwargs: Any) -> TaskFamily:
    """The `acrobot` family: each link's length and mass ~ U[low, high] per task."""
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
    """The `mountaincar` family: engine force and gravity ~ U[low, high] per task."""
    _check_ranges("mountaincar", {"force": force, "gravity": gravity})

    def sample_params(key: chex.PRNGKey) -> mountain_car.EnvParams:
        k_f, k_g = jax.random.split(key)
        return mountain_car.EnvParams(force=uniform(k_f, force), gravity=uniform(k_g, gravity))

    return TaskFamily(name="mountaincar", env=mountain_car.MountainCar(),
                      sample_params=sample_params,
                      description="MountainCar-v0 with per-task engine force and gravity",
                      **family_kwargs)


class DiscretePendulum(pendulum.Pendulum):
    """Pendulum-v1 whose action `i` applies torque `levels[i] * max_torque`, `levels` in [-1, 1]."""

    def __init__(self, num_torques: int = 5):
        super().__init__()
        self.levels = jnp.linspace(-1.0, 1.0, num_torques, dtype=jnp.float32)

    def step_env(self, key, state: pendulum.EnvState, action, params: pendulum.EnvParams):
        return super().step_env(key, state, self.levels[action] * params.max_torque, params)

    @property
    def name(self) -> str:
        return "DiscretePendulum"

    @property
    def num_actions(self) -> int:
        return self.levels.shape[0]

    def action_space(self, params: pendulum.EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)


def make_pendulum(mass: Range = (0.5, 1.5), length: Range = (0.5, 1.5), gravity: Range = (5.0, 15.0),
                  num_torques: int = 5, **family_kwargs: Any) -> TaskFamily:
    """The `pendulum` family: mass, length and gravity ~ U[low, high] per task.

    `num_torques` (≥ 2) evenly spaced torques from −max_torque to +max_torque are the actions.
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
