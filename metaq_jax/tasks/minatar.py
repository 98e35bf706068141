"""`asterix`: MinAtar Asterix (gymnax) whose pace is the task.

A task sets how many frames pass between spawns of enemies and gold (`init_spawn_speed`) and
between their moves (`init_move_interval`); the game still ramps up from there every
`ramp_interval` frames. Settings are integers, so the task set is finite: every 5th
(spawn, move) pair is held out for testing. Observation: `[10, 10, 4]` frames (player, enemy,
trail, gold); 5 actions (no-op and the 4 moves).
"""

import itertools
from typing import Any

import chex
import jax.numpy as jnp
import numpy as np
from gymnax.environments.minatar import asterix

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily, check_positive_int, check_range, finite_tasks


def make_asterix(spawn_speed: tuple[int, int] = (4, 16), move_interval: tuple[int, int] = (2, 8),
                 max_steps: int = 1000, **family_kwargs: Any) -> TaskFamily:
    """The `asterix` family: (spawn speed, move interval) drawn from the integer grid per task.

    Defaults span around MinAtar's (10, 5); smaller numbers make a faster, harder game.

    Args:
      spawn_speed: `(low, high)` ints, frames between spawns at the start of the game.
      move_interval: `(low, high)` ints, frames between enemy and gold moves at the start.
      max_steps: the episode length.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: gymnax's `MinAsterix`, every integer (spawn, move) pair of the ranges a task,
      every 5th held out for testing.

    Raises:
      InputError: a range is not `(low, high)` ints with `0 < low <= high`, `max_steps` is not a
        positive int, or the ranges allow fewer than 2 settings.
    """
    check_range("asterix", "spawn_speed", spawn_speed, integer=True)
    check_range("asterix", "move_interval", move_interval, integer=True)
    check_positive_int("asterix", "max_steps", max_steps)
    pairs = np.array(list(itertools.product(range(spawn_speed[0], spawn_speed[1] + 1),
                                            range(move_interval[0], move_interval[1] + 1))), np.int32)
    if len(pairs) < 2:
        raise InputError(f"asterix spawn_speed = {spawn_speed!r}, move_interval = {move_interval!r}: "
                         "must allow at least 2 settings, so that some can be held out for testing")

    def make_params(pair: chex.Array) -> asterix.EnvParams:
        return asterix.EnvParams(init_spawn_speed=pair[0], init_move_interval=pair[1],
                                 ramp_interval=jnp.int32(100), max_steps_in_episode=max_steps)

    return TaskFamily(name="asterix", env=asterix.MinAsterix(),
                      description="MinAtar Asterix with per-task spawn speed and move interval, "
                                  "[10,10,4] frames, 5 actions",
                      **finite_tasks(make_params, pairs, **family_kwargs))
