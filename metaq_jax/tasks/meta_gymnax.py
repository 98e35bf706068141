"""gymnax's meta-RL environments with the goal held fixed per trial: `metamaze`, `pointrobot`.

gymnax's MetaMaze and PointRobot draw a new goal in every `reset_env`, so auto-reset changes the
task each episode. Here the goal is a field of the params and `reset_env` copies it into the
state; the dynamics are gymnax's own.
"""

from typing import Any

import chex
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.environments.misc import meta_maze, point_robot

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily, check_positive_int, finite_tasks, uniform
from metaq_jax.tasks.nav2d import MOVES


@struct.dataclass
class MazeParams(meta_maze.EnvParams):
    """gymnax's MetaMaze parameters plus the task's goal cell `[2]` (row, column)."""

    goal: chex.Array = struct.field(default_factory=lambda: jnp.array([1, 1], jnp.int32))  # [2] cell


class FixedGoalMaze(meta_maze.MetaMaze):
    """MetaMaze (Miconi et al. 2019) whose goal cell is `params.goal`, kept across resets."""

    @property
    def default_params(self) -> MazeParams:
        """gymnax's defaults with the goal at cell (1, 1).

        Returns:
          `MazeParams()`.
        """
        return MazeParams()

    def reset_env(self, key: chex.PRNGKey, params: MazeParams) -> tuple[chex.Array, meta_maze.EnvState]:
        """gymnax's reset (the agent at the maze centre), with the goal set to `params.goal`.

        Args:
          key: passed to gymnax's reset; the goal it draws is replaced.
          params: the task.

        Returns:
          `(obs[15], state)`.
        """
        _, state = super().reset_env(key, params)
        state = state.replace(goal=params.goal)
        return self.get_obs(state, params), state

    def goal_cells(self) -> np.ndarray:
        """The open cells that can be goals: all but the start (the maze centre).

        Returns:
          `[G, 2]` int32 (row, column) pairs.
        """
        cells = np.asarray(self.coords, np.int32)
        return cells[np.any(cells != np.asarray(self.center_position), axis=1)]


def make_metamaze(maze_size: int = 9, max_steps: int = 200, **family_kwargs: Any) -> TaskFamily:
    """The `metamaze` family: a goal cell per task; every 5th open cell is held out for testing.

    Reaching the goal pays 10 and puts the agent at a random cell, the episode going on (gymnax's
    rule); the agent sees its 3×3 surroundings, its last action and reward and the normalised
    time, `[15]`.

    Args:
      maze_size: the maze's side, an odd int ≥ 3.
      max_steps: the episode length.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: `FixedGoalMaze(maze_size)`, 4 actions.

    Raises:
      InputError: `maze_size` is not an odd int ≥ 3, or `max_steps` not a positive int.
    """
    check_positive_int("metamaze", "maze_size", maze_size, minimum=3)
    if maze_size % 2 == 0:
        raise InputError(f"metamaze maze_size = {maze_size}: must be odd")
    check_positive_int("metamaze", "max_steps", max_steps)
    env = FixedGoalMaze(maze_size=maze_size)

    def make_params(goal: chex.Array) -> MazeParams:
        # time normalised so the network sees a bounded input rather than the raw step count
        return MazeParams(goal=goal, normalize_time=True, max_steps_in_episode=max_steps)

    return TaskFamily(name="metamaze", env=env,
                      description=f"MetaMaze {maze_size}×{maze_size} (gymnax) with a fixed goal cell "
                                  f"per task, 4 actions",
                      **finite_tasks(make_params, env.goal_cells(), **family_kwargs))


@struct.dataclass
class RobotParams(point_robot.EnvParams):
    """gymnax's PointRobot parameters plus the task's goal position `[2]`."""

    goal: chex.Array = struct.field(default_factory=lambda: jnp.array([1.0, 0.0], jnp.float32))  # [2]


class DiscretePointRobot(point_robot.PointRobot):
    """PointRobot (Dorfman et al. 2021) with goal `params.goal`; action i moves by MOVES[i] · max_force."""

    @property
    def default_params(self) -> RobotParams:
        """gymnax's defaults with the goal at (1, 0).

        Returns:
          `RobotParams()`.
        """
        return RobotParams()

    def step_env(self, key: chex.PRNGKey, state: point_robot.EnvState, action: chex.Array,
                 params: RobotParams) -> tuple[chex.Array, point_robot.EnvState, chex.Array,
                                               chex.Array, dict]:
        """Move by `MOVES[action] * max_force`, then gymnax's PointRobot step.

        Args:
          key: passed to gymnax's step.
          state: the robot's state.
          action: the move's index, an int scalar in [0, 9).
          params: the task.

        Returns:
          `(obs[6], state, reward, done, info)`, as gymnax's PointRobot.
        """
        return super().step_env(key, state, jnp.asarray(MOVES)[action] * params.max_force, params)

    def reset_env(self, key: chex.PRNGKey, params: RobotParams) -> tuple[chex.Array, point_robot.EnvState]:
        """gymnax's reset, with the goal set to `params.goal`.

        Args:
          key: draws the start position (unless `params.center_init`); the goal gymnax draws
            with it is replaced.
          params: the task.

        Returns:
          `(obs[6], state)`.
        """
        _, state = super().reset_env(key, params)
        state = state.replace(goal=params.goal)
        return self.get_obs(state, params), state

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"DiscretePointRobot"`.
        """
        return "DiscretePointRobot"

    @property
    def num_actions(self) -> int:
        """The number of actions.

        Returns:
          9, stay and the 8 compass moves.
        """
        return MOVES.shape[0]

    def action_space(self, params: RobotParams | None = None) -> spaces.Discrete:
        """The moves.

        Args:
          params: unused.

        Returns:
          `Discrete(9)`.
        """
        return spaces.Discrete(self.num_actions)


def make_pointrobot(dense_reward: bool = False, **family_kwargs: Any) -> TaskFamily:
    """The `pointrobot` family: goal on the unit semicircle, angle ~ U[0, π] per task.

    Observation: position, last reward, last move and normalised time, `[6]`; 9 actions
    (stay + 8 compass moves of max_force). `dense_reward` pays −distance instead of 1 in the
    goal's radius.

    Args:
      dense_reward: pay −distance to the goal every step, rather than 1 inside its radius.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family: `DiscretePointRobot()`.

    Raises:
      InputError: `dense_reward` is not a bool.
    """
    if not isinstance(dense_reward, bool):
        raise InputError(f"pointrobot dense_reward = {dense_reward!r}: must be True or False")

    def sample_params(key: chex.PRNGKey) -> RobotParams:
        angle = uniform(key, (0.0, float(np.pi)))
        return RobotParams(goal=jnp.stack([jnp.cos(angle), jnp.sin(angle)]), dense_reward=dense_reward)

    return TaskFamily(name="pointrobot", env=DiscretePointRobot(), sample_params=sample_params,
                      description="PointRobot (gymnax) with a fixed goal on the unit semicircle "
                                  "per task, 9 actions",
                      **family_kwargs)
