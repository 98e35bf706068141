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
MOVES = jnp.array(
    [[0, 0], [0, 1], [1, 1], [1, 0], [1, -1], [0, -1], [-1, -1], [-1, 0], [-1, 1]], jnp.float32
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
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        del key  # deterministic dynamics
        pos = state.pos + params.step_size * MOVES[action]
        state = EnvState(pos=pos, time=state.time + 1)
        reward = -jnp.linalg.norm(pos - params.goal)
        terminated = self.is_terminated(state, params)
        return state.pos, state, reward, terminated, {}

    def reset_env(self, key, params: EnvParams):
        del key, params  # always the origin; the goal stays in params across episodes
        state = EnvState(pos=jnp.zeros(2, jnp.float32), time=0)
        return state.pos, state

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        return jnp.all(jnp.abs(state.pos - params.goal) < params.tolerance)

    @property
    def name(self) -> str:
        return "Nav2D"

    @property
    def num_actions(self) -> int:
        return MOVES.shape[0]

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)


def paper_test_goals() -> np.ndarray:
    """The MAML paper's 40 test goals: `np.random.seed(1)`, then U[-0.5, 0.5]². `[40, 2]`."""
    return np.random.RandomState(1).uniform(-0.5, 0.5, size=(40, 2)).astype(np.float32)


def oracle_return(params: EnvParams, max_steps: int = 100) -> chex.Array:
    """The optimal return of one `max_steps` episode: step to the neighbour nearest the goal.

    With these moves the one-step greedy choice is optimal (value iteration agrees): each
    coordinate closes on the goal by the full step until within half a step of it.
    """

    def step(carry, _):
        pos, done = carry
        candidates = pos[None] + params.step_size * MOVES  # [9, 2]
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
