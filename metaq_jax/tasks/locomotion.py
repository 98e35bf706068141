"""Robot locomotion on brax: `cheetah-vel`, `cheetah-dir`, `ant-dir`, `ant-goal`.

The task families of the meta-RL locomotion benchmarks (MAML, ProMP, PEARL, MQL): a half-cheetah
asked for a target forward velocity or a direction, an ant asked for a direction or a goal
position. brax simulates the robot under `jit`/`vmap`; `Locomotion` wraps a brax environment as
a gymnax one, so rollouts, auto-reset and sharding are those of every family. The task lives in
the `EnvParams` (fixed for the trial: brax's reset only draws the start pose's noise), and the
reward is the task's, computed from brax's per-step metrics:

- `cheetah-vel`: −|v − v_goal| − 0.05‖a‖², v_goal ~ U[0, 3];
- `cheetah-dir`: d·v − 0.05‖a‖², d = ±1 (both directions are the test tasks, as in PEARL);
- `ant-dir`: v·(cos θ, sin θ) + 1 − 0.5‖a‖² (brax's healthy reward and control cost), θ ~ U[0, 2π);
- `ant-goal`: −‖xy − goal‖ + 1 − 0.5‖a‖², goal uniform in the disk of radius 3; its observation
  includes the torso's xy (the goal is relative to the start).

v is the torso's velocity after the step; actions are in [−1, 1]ᴬ (clipped); an ant episode
terminates when it falls (brax's healthy range); every episode is truncated after 200 steps.
"""

import contextlib
import dataclasses
import io
import warnings
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily, uniform

BACKENDS = ("spring", "positional", "generalized")
CHEETAH_CONTROL_COST = 0.05


@struct.dataclass
class EnvState(environment.EnvState):
    physics: Any  # brax's `State`: the pipeline state, observation and metrics after the last step
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    """One locomotion task; each family reads its own field and leaves the others at 0."""

    velocity: chex.Array = 0.0  # cheetah-vel: the target forward velocity
    direction: chex.Array = 1.0  # cheetah-dir: +1 forward, −1 backward
    angle: chex.Array = 0.0  # ant-dir: the direction to run in, radians
    goal: chex.Array = struct.field(default_factory=lambda: np.zeros(2, np.float32))  # ant-goal: [2] xy
    max_steps_in_episode: int = 200


RewardFn = Callable[[dict[str, chex.Array], EnvParams], chex.Array]
"""`(metrics, task) -> reward[]`: the task's reward from brax's metrics after one step."""


def cheetah_vel_reward(metrics: dict[str, chex.Array], params: EnvParams) -> chex.Array:
    """−|v − v_goal| − 0.05‖a‖² (brax's `reward_ctrl` with control cost weight 0.05).

    Args:
      metrics: brax's metrics after the step (`{name: []}`).
      params: the task.

    Returns:
      `[]` the reward.
    """
    return -jnp.abs(metrics["x_velocity"] - params.velocity) + metrics["reward_ctrl"]


def cheetah_dir_reward(metrics: dict[str, chex.Array], params: EnvParams) -> chex.Array:
    """d·v − 0.05‖a‖².

    Args:
      metrics: brax's metrics after the step (`{name: []}`).
      params: the task.

    Returns:
      `[]` the reward.
    """
    return params.direction * metrics["x_velocity"] + metrics["reward_ctrl"]


def ant_dir_reward(metrics: dict[str, chex.Array], params: EnvParams) -> chex.Array:
    """v·(cos θ, sin θ) + healthy reward − control cost (− contact cost, 0 by brax's default).

    Args:
      metrics: brax's metrics after the step (`{name: []}`).
      params: the task.

    Returns:
      `[]` the reward.
    """
    forward = metrics["x_velocity"] * jnp.cos(params.angle) + metrics["y_velocity"] * jnp.sin(params.angle)
    return forward + metrics["reward_survive"] + metrics["reward_ctrl"] + metrics["reward_contact"]


def ant_goal_reward(metrics: dict[str, chex.Array], params: EnvParams) -> chex.Array:
    """−‖xy − goal‖ + healthy reward − control cost (− contact cost, 0 by brax's default).

    Args:
      metrics: brax's metrics after the step (`{name: []}`).
      params: the task.

    Returns:
      `[]` the reward.
    """
    xy = jnp.stack([metrics["x_position"], metrics["y_position"]])
    return (-jnp.linalg.norm(xy - params.goal) + metrics["reward_survive"] + metrics["reward_ctrl"]
            + metrics["reward_contact"])


@dataclasses.dataclass(frozen=True, eq=False)
class Locomotion(environment.Environment[EnvState, EnvParams]):
    """A brax robot as a gymnax environment whose reward is the task's.

    Attributes:
      robot: the brax environment (`brax.envs.get_environment(...)`); its own reward is ignored,
        its `done` (an ant falling) terminates the episode.
      reward_fn: the task's reward from brax's metrics after the step.
      label: the environment's name.
    """

    robot: Any
    reward_fn: RewardFn
    label: str

    @property
    def default_params(self) -> EnvParams:
        """The default task.

        Returns:
          `EnvParams()`: velocity 0, direction +1, angle 0, goal at the origin, 200 steps.
        """
        return EnvParams()

    def step_env(self, key, state: EnvState, action, params: EnvParams):
        """One physics step (brax's `dt`) without auto-reset, paid the task's reward.

        Args:
          key (chex.PRNGKey): unused (brax's dynamics are deterministic).
          state: the current state.
          action (chex.Array): `[A]` float, clipped to [−1, 1].
          params: the task.

        Returns:
          (tuple): `(obs[O], state, reward[], terminated[], {})`; `terminated` is brax's `done`.
        """
        del key  # deterministic dynamics
        with jax.numpy_rank_promotion("allow"):  # brax's own arithmetic relies on it
            physics = self.robot.step(state.physics, jnp.clip(action, -1.0, 1.0))
        state = EnvState(physics=physics, time=state.time + 1)
        return physics.obs, state, self.reward_fn(physics.metrics, params), physics.done > 0, {}

    def reset_env(self, key, params: EnvParams):
        """Start an episode in brax's start pose with its reset noise.

        Args:
          key (chex.PRNGKey): consumed by brax's reset noise.
          params: unused: the task stays in params across episodes.

        Returns:
          (tuple): `(obs[O], state)` at time 0.
        """
        del params  # the task is not part of the start state
        with jax.numpy_rank_promotion("allow"):  # brax's own arithmetic relies on it
            physics = self.robot.reset(key)
        return physics.obs, EnvState(physics=physics, time=0)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          e.g. `"cheetah-vel"`.
        """
        return self.label

    @property
    def num_actions(self) -> int:
        """Refused: the actions are continuous.

        Returns:
          Never: it always raises.

        Raises:
          InputError: always; use `action_space(...).shape`.
        """
        raise InputError(f"{self.label} has continuous actions ({self.robot.action_size} dims); "
                         "its action size is action_space(params).shape[0], not num_actions")

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        """The action space.

        Args:
          params: unused.

        Returns:
          `Box(-1, 1, (A,))`, A the robot's actuators.
        """
        return spaces.Box(-1.0, 1.0, (self.robot.action_size,), jnp.float32)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The observation space: brax's unbounded observation.

        Args:
          params: unused.

        Returns:
          A float32 `Box(-inf, inf, (O,))`.
        """
        return spaces.Box(-jnp.inf, jnp.inf, (self.robot.observation_size,), jnp.float32)


def _env(family: str, robot: str, reward_fn: RewardFn, backend: str, max_steps: int,
         **robot_kwargs: Any) -> Locomotion:
    """`family`'s environment: brax's `robot` on `backend` paid `reward_fn`, options checked first."""
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise InputError(f"{family} max_steps = {max_steps!r}: must be an integer >= 1")
    return Locomotion(_robot(family, robot, backend, **robot_kwargs), reward_fn, family)


def _robot(family: str, name: str, backend: str, **kwargs: Any) -> Any:
    """brax's environment `name` on `backend`; brax (and mujoco) load only here."""
    if backend not in BACKENDS:
        raise InputError(f"{family} backend = {backend!r}: must be one of {', '.join(BACKENDS)}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # mujoco's mjx prints that its GPU backend (warp) is absent
            from brax import envs
    except ImportError as error:
        raise InputError(f"family {family} needs brax ({error}): pip install 'metaq-jax[brax]'") from None
    import mujoco

    previous = mujoco.get_mju_user_warning()
    # mujoco's compiler warns (on stderr) that brax's half-cheetah model uses a deprecated attribute
    mujoco.set_mju_user_warning(lambda message: None)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Brax System")  # brax's notice that it is in maintenance
            return envs.get_environment(name, backend=backend, **kwargs)
    finally:
        mujoco.set_mju_user_warning(previous)


def make_cheetah_vel(velocity: tuple[float, float] = (0.0, 3.0), max_steps: int = 200,
                     backend: str = "spring", **family_kwargs: Any) -> TaskFamily:
    """The `cheetah-vel` family: run at a target forward velocity ~ U[low, high].

    Args:
      velocity: `(low, high)` of the target velocity.
      max_steps: the episode length.
      backend: brax's physics pipeline, one of `BACKENDS` (`spring` is the fastest on a CPU).
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family.

    Raises:
      InputError: a bad backend or `max_steps`.
    """
    env = _env("cheetah-vel", "halfcheetah", cheetah_vel_reward, backend, max_steps,
               ctrl_cost_weight=CHEETAH_CONTROL_COST)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        return EnvParams(velocity=uniform(key, velocity), max_steps_in_episode=max_steps)

    return TaskFamily("cheetah-vel", env, sample_params, **family_kwargs,
                      description=f"brax half-cheetah running at a target velocity ~ U{list(velocity)} ({backend})")


def make_cheetah_dir(max_steps: int = 200, backend: str = "spring", **family_kwargs: Any) -> TaskFamily:
    """The `cheetah-dir` family: run forward (+1) or backward (−1).

    There are two tasks, so there is nothing to hold out: as in PEARL and the MAML paper both
    directions are trained on and tested (`test_params`, forward then backward).

    Args:
      max_steps: the episode length.
      backend: brax's physics pipeline, one of `BACKENDS`.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family.

    Raises:
      InputError: a bad backend or `max_steps`.
    """
    env = _env("cheetah-dir", "halfcheetah", cheetah_dir_reward, backend, max_steps,
               ctrl_cost_weight=CHEETAH_CONTROL_COST)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return EnvParams(direction=sign, max_steps_in_episode=max_steps)

    both = jax.vmap(lambda d: EnvParams(direction=d, max_steps_in_episode=max_steps))(jnp.array([1.0, -1.0]))
    return TaskFamily("cheetah-dir", env, sample_params, **{"num_test_tasks": 2, **family_kwargs, "test_params": both},
                      description=f"brax half-cheetah running forward or backward ({backend})")


def make_ant_dir(max_steps: int = 200, backend: str = "spring", **family_kwargs: Any) -> TaskFamily:
    """The `ant-dir` family: run in a direction θ ~ U[0, 2π) (PEARL's is its θ ∈ {0, π} case).

    Args:
      max_steps: the episode length.
      backend: brax's physics pipeline, one of `BACKENDS`.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family.

    Raises:
      InputError: a bad backend or `max_steps`.
    """
    env = _env("ant-dir", "ant", ant_dir_reward, backend, max_steps)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        return EnvParams(angle=uniform(key, (0.0, 2 * np.pi)), max_steps_in_episode=max_steps)

    return TaskFamily("ant-dir", env, sample_params, **family_kwargs,
                      description=f"brax ant running in a direction ~ U[0, 2π) ({backend})")


def make_ant_goal(radius: float = 3.0, max_steps: int = 200, backend: str = "spring",
                  **family_kwargs: Any) -> TaskFamily:
    """The `ant-goal` family: walk to a goal uniform in the disk of `radius` around the start.

    Args:
      radius: the disk's radius.
      max_steps: the episode length.
      backend: brax's physics pipeline, one of `BACKENDS`.
      **family_kwargs: passed to `TaskFamily`.

    Returns:
      The family; its observations include the torso's xy.

    Raises:
      InputError: a bad backend, radius or `max_steps`.
    """
    if not radius > 0:
        raise InputError(f"ant-goal radius = {radius!r}: must be > 0")
    env = _env("ant-goal", "ant", ant_goal_reward, backend, max_steps, exclude_current_positions_from_observation=False)

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        k_r, k_a = jax.random.split(key)
        r = radius * jnp.sqrt(jax.random.uniform(k_r))  # sqrt: uniform over the disk's area
        a = uniform(k_a, (0.0, 2 * np.pi))
        return EnvParams(goal=r * jnp.stack([jnp.cos(a), jnp.sin(a)]), max_steps_in_episode=max_steps)

    return TaskFamily("ant-goal", env, sample_params, **family_kwargs,
                      description=f"brax ant walking to a goal in a disk of radius {radius} ({backend})")
