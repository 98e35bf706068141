"""`gridworld`: a small grid with a per-task goal cell, for the tabular learner.

The agent starts in the centre of an N×N grid (N odd) and moves up, right, down or left (walls
stop it). Reaching the goal pays 1 and ends the episode; every other step costs 0.01; episodes
are truncated after `max_steps`. The observation is the one-hot cell `[N²]`. Every 5th
possible goal cell is held out for testing.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily, check_positive_int, finite_tasks

# up, right, down, left; numpy: a module-level jax array would start JAX's backend at import
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], np.int32)


@struct.dataclass
class EnvState(environment.EnvState):
    cell: chex.Array  # [2] int32 (row, column)
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    goal: chex.Array = struct.field(default_factory=lambda: jnp.zeros(2, jnp.int32))  # [2] int32
    max_steps_in_episode: int = 20


class GridWorld(environment.Environment[EnvState, EnvParams]):
    """An N×N grid; the task is the goal cell."""

    def __init__(self, size: int = 5):
        super().__init__()
        self.size = size

    @property
    def start(self) -> chex.Array:
        """The start cell, the centre of the grid.

        Returns:
          `[2]` int32 (row, column), both `size // 2`.
        """
        return jnp.full(2, self.size // 2, jnp.int32)

    @property
    def default_params(self) -> EnvParams:
        """The default task.

        Returns:
          `EnvParams` with the goal at cell (0, 0) and 20 steps per episode.
        """
        return EnvParams(goal=jnp.zeros(2, jnp.int32))

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        """One step without auto-reset: move one cell (walls stop it), pay 1 at the goal, else −0.01.

        Args:
          key (chex.PRNGKey): unused (the dynamics are deterministic).
          state: the current state.
          action (chex.Array): int32 scalar in `[0, 4)`: up, right, down, left.
          params: the task.

        Returns:
          (tuple): `(obs[N²], state, reward[], terminated[], {})`, the observation being the one-hot
          new cell and `terminated` whether it is the goal.
        """
        del key
        cell = jnp.clip(state.cell + jnp.asarray(MOVES)[action], 0, self.size - 1)
        state = EnvState(cell=cell, time=state.time + 1)
        terminated = self.is_terminated(state, params)
        reward = jnp.where(terminated, 1.0, -0.01)
        return self._obs(state), state, reward, terminated, {}

    def reset_env(self, key, params: EnvParams):
        """Start an episode in the centre cell.

        Args:
          key (chex.PRNGKey): unused (the start is fixed).
          params: the task; unused, as the goal stays in `params` across episodes.

        Returns:
          (tuple): `(obs[N²], state)`, the observation being the one-hot start cell, at time 0.
        """
        del key, params  # the goal stays in params: the task never changes at reset
        state = EnvState(cell=self.start, time=0)
        return self._obs(state), state

    def _obs(self, state: EnvState) -> chex.Array:
        return jax.nn.one_hot(state.cell[0] * self.size + state.cell[1], self.size**2, dtype=jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        """Whether `state` is at the goal cell.

        Args:
          state: the state to test.
          params: the task (its goal).

        Returns:
          `[]` bool.
        """
        return jnp.all(state.cell == params.goal)

    def goal_cells(self) -> np.ndarray:
        """Every cell but the start, `[N² - 1, 2]`.

        Returns:
          `[N² - 1, 2]` int32 (row, column) in row-major order.
        """
        cells = np.stack(np.divmod(np.arange(self.size**2), self.size), axis=1).astype(np.int32)
        return cells[np.any(cells != self.size // 2, axis=1)]

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"GridWorld"`.
        """
        return "GridWorld"

    @property
    def num_actions(self) -> int:
        """The number of discrete actions.

        Returns:
          4, for up, right, down and left.
        """
        return 4

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """The action space.

        Args:
          params: unused.

        Returns:
          `Discrete(4)`.
        """
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The observation space: a one-hot cell.

        Args:
          params: unused.

        Returns:
          A float32 `Box(0, 1, (N²,))`.
        """
        return spaces.Box(0.0, 1.0, (self.size**2,), jnp.float32)


def make_gridworld(size: int = 5, max_steps: int = 20, **family_kwargs: Any) -> TaskFamily:
    """The `gridworld` family: an odd `size`, goals on every cell but the centre.

    Args:
      size: N, the side of the grid; odd and at least 3.
      max_steps: the episode length (time limit) of every task.
      **family_kwargs: passed to `TaskFamily` (e.g. `split_seed`).

    Returns:
      The `gridworld` `TaskFamily`, with `num_states = size²` and every 5th goal cell held out.

    Raises:
      InputError: `size` is not an odd integer of at least 3, or `max_steps` is not a positive
        integer.
    """
    check_positive_int("gridworld", "size", size, minimum=3)
    check_positive_int("gridworld", "max_steps", max_steps)
    if size % 2 == 0:
        raise InputError(f"gridworld size = {size}: must be odd (the start is the centre cell)")
    env = GridWorld(size)

    def make_params(goal: chex.Array) -> EnvParams:
        return EnvParams(goal=goal, max_steps_in_episode=max_steps)

    return TaskFamily(
        name="gridworld",
        env=env,
        num_states=size**2,
        description=f"{size}×{size} grid, goal cell per task (every 5th held out), one-hot cell observation",
        **finite_tasks(make_params, env.goal_cells(), **family_kwargs),
    )
