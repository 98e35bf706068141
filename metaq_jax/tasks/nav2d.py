"""`nav2d`: the 2-D point navigation task of the MAML paper (Finn et al. 2017), discrete actions.

The point starts at (0, 0); the task is a goal g ~ U[-0.5, 0.5]², not observed. Each step
moves by one of 9 actions (stay, or ±step_size on either or both coordinates, the paper's
±0.1 clip per coordinate) and pays −‖s − g‖ at the new position. The episode terminates when
|s − g| < tolerance in each coordinate and is truncated after 100 steps.
"""

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.tasks.family import TaskFamily, uniform

# Action i moves by MOVES[i] * step_size: stay, then the 8 compass directions.
# A numpy constant: a module-level jax array would start JAX's backend at import.
MOVES = np.array(
    [[0, 0], [0, 1], [1, 1], [1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1]], np.float32
)


@struct.dataclass
class EnvState(environment.EnvState):
    pos: chex.Array  # [2]
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    goal: chex.Array = struct.field(default_factory=lambda: jnp.zeros(2, jnp.float32))
    step_size: float = 0.1
    tolerance: float = 0.01
    max_steps_in_episode: int = 100


class Nav2D(environment.Environment[EnvState, EnvParams]):
    """Point navigation to a hidden goal; observation = position `[2]`."""

    @property
    def default_params(self) -> EnvParams:
        """The default task.

        Returns:
          `EnvParams()`: goal at the origin, step size 0.1, tolerance 0.01, 100 steps.
        """
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        """One step without auto-reset: move by `MOVES[action] * step_size`, pay −‖pos − goal‖.

        Args:
          key (chex.PRNGKey): unused (the dynamics are deterministic).
          state: the current state.
          action (chex.Array): int32 scalar in `[0, 9)`, an index into `MOVES`.
          params: the task.

        Returns:
          (tuple): `(obs[2], state, reward[], terminated[], {})`, the observation being the new position
          and `terminated` whether the goal is reached (`is_terminated`).
        """
        del key  # deterministic dynamics
        pos = state.pos + params.step_size * jnp.asarray(MOVES)[action]
        state = EnvState(pos=pos, time=state.time + 1)
        reward = -jnp.linalg.norm(pos - params.goal)
        terminated = self.is_terminated(state, params)
        return state.pos, state, reward, terminated, {}

    def reset_env(self, key, params: EnvParams):
        """Start an episode at the origin.

        Args:
          key (chex.PRNGKey): unused (the start is fixed).
          params: the task; unused, as the goal stays in `params` across episodes.

        Returns:
          (tuple): `(obs[2], state)`, the observation being the position (0, 0), at time 0.
        """
        del key, params  # always the origin; the goal stays in params across episodes
        state = EnvState(pos=jnp.zeros(2, jnp.float32), time=0)
        return state.pos, state

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        """Whether `state` is within `tolerance` of the goal in each coordinate.

        Args:
          state: the state to test.
          params: the task (goal and tolerance).

        Returns:
          `[]` bool.
        """
        return jnp.all(jnp.abs(state.pos - params.goal) < params.tolerance)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"Nav2D"`.
        """
        return "Nav2D"

    @property
    def num_actions(self) -> int:
        """The number of discrete actions.

        Returns:
          9, stay and the 8 compass directions.
        """
        return MOVES.shape[0]

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """The action space.

        Args:
          params: unused.

        Returns:
          `Discrete(9)`.
        """
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The observation space: the unbounded position.

        Args:
          params: unused.

        Returns:
          A float32 `Box(-inf, inf, (2,))`.
        """
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def paper_test_goals() -> np.ndarray:
    """The MAML paper's 40 test goals: `np.random.seed(1)`, then U[-0.5, 0.5]². `[40, 2]`.

    Returns:
      `[40, 2]` float32 goals.
    """
    return np.random.RandomState(1).uniform(-0.5, 0.5, size=(40, 2)).astype(np.float32)


def oracle_return(params: EnvParams, max_steps: int = 100) -> chex.Array:
    """The optimal return of one `max_steps` episode: step to the neighbour nearest the goal.

    With these moves the one-step greedy choice is optimal (value iteration agrees): each
    coordinate closes on the goal by the full step until within half a step of it.

    Args:
      params: one task (no batch axis); its goal, step size and tolerance are used.
      max_steps: the episode length.

    Returns:
      `[]` float32: the sum of rewards until the goal is reached or `max_steps` have passed.
    """

    def step(carry, _):
        pos, done = carry
        candidates = pos[None] + params.step_size * jnp.asarray(MOVES)  # [9, 2]
        pos = candidates[jnp.argmin(jnp.linalg.norm(candidates - params.goal[None], axis=-1))]
        reward = jnp.where(done, 0.0, -jnp.linalg.norm(pos - params.goal))
        return (pos, done | jnp.all(jnp.abs(pos - params.goal) < params.tolerance)), reward

    _, rewards = jax.lax.scan(step, (jnp.zeros(2, jnp.float32), jnp.array(False)), None,
                              length=max_steps)
    return jnp.sum(rewards)


def make_nav2d(goal_low: float = -0.5, goal_high: float = 0.5, max_steps: int = 100,
               paper_goals: bool = True, **family_kwargs: Any) -> TaskFamily:
    """The `nav2d` family; `family_kwargs` go to `TaskFamily` (num_test_tasks, split_seed).

    With `paper_goals` the held-out tasks are the MAML paper's 40 test goals; training goals
    are drawn afresh from the same distribution (they coincide with a test goal with
    probability zero).

    Args:
      goal_low: lower bound of each goal coordinate.
      goal_high: upper bound of each goal coordinate.
      max_steps: the episode length (time limit) of every task.
      paper_goals: hold out `paper_test_goals()` as the test tasks, rather than indexed draws;
        `num_test_tasks` is then 40 unless given.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The `nav2d` `TaskFamily`, with an exact `oracle_return`.
    """

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        goal = uniform(key, (goal_low, goal_high), (2,))
        return EnvParams(goal=goal, max_steps_in_episode=max_steps)

    if paper_goals:
        goals = jnp.asarray(paper_test_goals())
        family_kwargs = {"num_test_tasks": len(goals), **family_kwargs,
                         "test_params": jax.vmap(lambda g: EnvParams(goal=g, max_steps_in_episode=max_steps))(goals)}
    return TaskFamily(
        name="nav2d",
        env=Nav2D(),
        sample_params=sample_params,
        description="2-D point navigation to a hidden goal ~ U[-0.5,0.5]² (MAML paper), 9 actions",
        oracle_return=functools.partial(oracle_return, max_steps=max_steps),
        **family_kwargs,
    )
