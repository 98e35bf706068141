"""`cartpole`: gymnax CartPole-v1 with per-task gravity, pole length and pole mass."""

from typing import Any

import chex
import jax
from gymnax.environments.classic_control import cartpole

from metaq_jax.tasks.family import TaskFamily, check_range, uniform


def cartpole_params(
    gravity: float = 9.8, length: float = 0.5, masspole: float = 0.1, masscart: float = 1.0, **kw: Any
) -> cartpole.EnvParams:
    """CartPole parameters with the derived fields recomputed from the physical ones.

    gymnax stores `total_mass` and `polemass_length` beside the masses and length; setting one
    without the others makes the physics silently inconsistent.

    Args:
      gravity: g, in m/s².
      length: half the pole's length, in m.
      masspole: the pole's mass, in kg.
      masscart: the cart's mass, in kg.
      **kw: any other field of gymnax's `cartpole.EnvParams` (e.g. `max_steps_in_episode`).

    Returns:
      The `cartpole.EnvParams`, with `total_mass = masscart + masspole` and
      `polemass_length = masspole * length`.
    """
    return cartpole.EnvParams(
        gravity=gravity,
        length=length,
        masspole=masspole,
        masscart=masscart,
        total_mass=masscart + masspole,
        polemass_length=masspole * length,
        **kw,
    )


def make_cartpole(
    gravity: tuple[float, float] = (4.9, 14.7),
    length: tuple[float, float] = (0.25, 0.75),
    masspole: tuple[float, float] = (0.05, 0.15),
    **family_kwargs: Any,
) -> TaskFamily:
    """The `cartpole` family: each physical parameter ~ U[low, high] per task.

    Defaults span 0.5×–1.5× of CartPole-v1's values; pass `(v, v)` to fix one.

    Args:
      gravity: `(low, high)` of g.
      length: `(low, high)` of the pole's half-length.
      masspole: `(low, high)` of the pole's mass.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: gymnax's `CartPole` with tasks from `cartpole_params`.

    Raises:
      InputError: a range is not `(low, high)` with `0 < low <= high`.
    """
    for name, bounds in (("gravity", gravity), ("length", length), ("masspole", masspole)):
        check_range("cartpole", name, bounds)

    def sample_params(key: chex.PRNGKey) -> cartpole.EnvParams:
        k_g, k_l, k_m = jax.random.split(key, 3)
        return cartpole_params(
            gravity=uniform(k_g, gravity), length=uniform(k_l, length), masspole=uniform(k_m, masspole)
        )

    return TaskFamily(
        name="cartpole",
        env=cartpole.CartPole(),
        sample_params=sample_params,
        description="CartPole-v1 with per-task gravity, pole length and pole mass",
        **family_kwargs,
    )
