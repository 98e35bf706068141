"""`tabular-mdp`: the random tabular MDPs of RL² (Duan et al. 2016).

Per task and per (state, action): a mean reward μ ~ N(1, 1) and a next-state distribution
~ Dirichlet(1, ..., 1). A pull of (s, a) pays μ(s, a) + N(0, 1). Episodes last 10 steps and
start in a uniformly drawn state (the start is not part of the task). The observation is the
state one-hot plus the fraction of the episode elapsed, `[S + 1]`.
"""

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from metaq_jax.tasks.family import TaskFamily, check_positive_int


class Prior(NamedTuple):
    """The distribution tasks are drawn from (RL²'s): μ(s, a) ~ N(mean, mean_variance), a pull pays
    μ(s, a) + N(0, noise_variance), and P(· | s, a) ~ Dirichlet(concentration, ..., concentration)."""

    mean: float = 1.0
    mean_variance: float = 1.0
    noise_variance: float = 1.0
    concentration: float = 1.0


@struct.dataclass
class EnvState(environment.EnvState):
    """Within an episode: the MDP state and the step."""

    state: chex.Array  # int32 scalar, the MDP state
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    """One task: mean rewards `[S, A]` and transition probabilities `[S, A, S]`."""

    reward_means: chex.Array = struct.field(default_factory=lambda: jnp.ones((10, 5), jnp.float32))
    transitions: chex.Array = struct.field(  # [S, A, S], rows sum to 1
        default_factory=lambda: jnp.full((10, 5, 10), 0.1, jnp.float32))
    max_steps_in_episode: int = 10


class TabularMDP(environment.Environment[EnvState, EnvParams]):
    """`num_states` states, `num_actions` actions, Gaussian rewards, tabular transitions.

    Args:
      num_states: S.
      num_actions: A.
      prior: the tasks' distribution; its `noise_variance` is the rewards' noise.
    """

    def __init__(self, num_states: int = 10, num_actions: int = 5, prior: Prior = Prior()):
        super().__init__()
        self.num_states = num_states
        self._num_actions = num_actions
        self.prior = prior

    @property
    def default_params(self) -> EnvParams:
        """Every mean reward 1 and every transition uniform, 10-step episodes.

        Returns:
          `EnvParams` shaped `[S, A]` and `[S, A, S]`.
        """
        shape = (self.num_states, self._num_actions)
        return EnvParams(reward_means=jnp.ones(shape, jnp.float32),
                         transitions=jnp.full(shape + (self.num_states,), 1 / self.num_states))

    def step_env(self, key: chex.PRNGKey, state: EnvState, action: chex.Array,
                 params: EnvParams) -> tuple[chex.Array, EnvState, chex.Array, chex.Array, dict]:
        """Take `action`: reward μ(s, a) + N(0, σ²) (σ² the prior's `noise_variance`), next state ~ P(· | s, a).

        Args:
          key: draws the reward's noise and the next state.
          state: the episode so far.
          action: an int scalar in [0, A).
          params: the task.

        Returns:
          `(obs[S + 1], state, reward, done, info)`; `done` is always False (gymnax ends the
          episode at `max_steps_in_episode`).
        """
        k_reward, k_next = jax.random.split(key)
        mean = params.reward_means[state.state, action]
        reward = mean + self.prior.noise_variance ** 0.5 * jax.random.normal(k_reward, (), jnp.float32)
        next_state = jax.random.categorical(k_next, jnp.log(params.transitions[state.state, action]))
        state = EnvState(state=next_state.astype(jnp.int32), time=state.time + 1)
        return self._obs(state, params), state, reward, jnp.array(False), {}

    def reset_env(self, key: chex.PRNGKey, params: EnvParams) -> tuple[chex.Array, EnvState]:
        """Start an episode in a uniformly drawn state.

        Args:
          key: draws the start state.
          params: the task.

        Returns:
          `(obs[S + 1], state)`.
        """
        start = jax.random.randint(key, (), 0, self.num_states, jnp.int32)
        state = EnvState(state=start, time=0)
        return self._obs(state, params), state

    def _obs(self, state: EnvState, params: EnvParams) -> chex.Array:
        one_hot = jax.nn.one_hot(state.state, self.num_states, dtype=jnp.float32)
        elapsed = jnp.asarray(state.time / params.max_steps_in_episode, jnp.float32)
        return jnp.concatenate([one_hot, elapsed[None]])

    def is_terminated(self, state: EnvState, params: EnvParams) -> chex.Array:
        """Whether the episode has terminated: never, it only ends by its length (truncation).

        Args:
          state: the episode so far.
          params: the task.

        Returns:
          False, a bool scalar.
        """
        return jnp.array(False)  # episodes end by their step budget (truncation)

    @property
    def name(self) -> str:
        """The environment's name.

        Returns:
          `"TabularMDP"`.
        """
        return "TabularMDP"

    @property
    def num_actions(self) -> int:
        """The number of actions.

        Returns:
          A.
        """
        return self._num_actions

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        """The actions.

        Args:
          params: unused.

        Returns:
          `Discrete(A)`.
        """
        return spaces.Discrete(self._num_actions)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        """The state one-hot and the fraction of the episode elapsed.

        Args:
          params: unused.

        Returns:
          `Box(0, 1, [S + 1])`.
        """
        return spaces.Box(0.0, 1.0, (self.num_states + 1,), jnp.float32)


def value_iteration(reward_means: chex.Array, transitions: chex.Array, horizon: int) -> tuple[chex.Array, chex.Array]:
    """Finite-horizon value iteration: V_h(s) = max_a μ(s, a) + Σ_s' P(s' | s, a) V_{h-1}(s').

    Args:
      reward_means: μ, `[S, A]`.
      transitions: P, `[S, A, S]`, rows summing to 1.
      horizon: H, a Python int.

    Returns:
      `(V_H [S], actions [H, S])`: the optimal return from each state, and the optimal action at
      step t of the episode (H − t steps to go) in each state.
    """

    def backup(value, _):  # value: [S], the optimal return with one step fewer to go
        q = reward_means + jnp.einsum("sat,t->sa", transitions, value)
        return jnp.max(q, axis=1), jnp.argmax(q, axis=1)

    value, actions = jax.lax.scan(backup, jnp.zeros(reward_means.shape[0]), None, length=horizon)
    return value, actions[::-1]  # the scan's i-th output has i + 1 steps to go


def optimal_return(params: EnvParams, horizon: int) -> chex.Array:
    """Expected return of the optimal policy over `horizon` steps from a uniform start state.

    Args:
      params: one task (no leading batch axis).
      horizon: the episode length, a Python int.

    Returns:
      The mean of `value_iteration`'s V_horizon over the states, a scalar.
    """
    return jnp.mean(value_iteration(params.reward_means, params.transitions, horizon)[0])


def make_tabular_mdp(num_states: int = 10, num_actions: int = 5, episode_length: int = 10,
                     **family_kwargs: Any) -> TaskFamily:
    """The `tabular-mdp` family (RL² defaults: 10 states, 5 actions, 10-step episodes).

    Args:
      num_states: S.
      num_actions: A.
      episode_length: steps per episode.
      **family_kwargs: passed to `TaskFamily` (e.g. `num_test_tasks`, `split_seed`).

    Returns:
      The family: `TabularMDP(num_states, num_actions)`, with `optimal_return` as its exact
      `oracle_return` and `num_states` set for `TabularQ`.

    Raises:
      InputError: a count is not a positive int.
    """
    for name, value in (("num_states", num_states), ("num_actions", num_actions),
                        ("episode_length", episode_length)):
        check_positive_int("tabular-mdp", name, value)

    env = TabularMDP(num_states, num_actions)
    prior = env.prior

    def sample_params(key: chex.PRNGKey) -> EnvParams:
        k_mu, k_p = jax.random.split(key)
        shape = (num_states, num_actions)
        means = prior.mean + prior.mean_variance ** 0.5 * jax.random.normal(k_mu, shape, jnp.float32)
        transitions = jax.random.dirichlet(k_p, jnp.full(num_states, prior.concentration, jnp.float32), shape)
        return EnvParams(reward_means=means, transitions=transitions,
                         max_steps_in_episode=episode_length)

    return TaskFamily(
        name="tabular-mdp",
        env=env,
        sample_params=sample_params,
        oracle_return=functools.partial(optimal_return, horizon=episode_length),
        num_states=num_states,
        description=f"random MDP (RL²): {num_states} states, {num_actions} actions, rewards "
                    f"~ N(μ,1) with μ ~ N(1,1), transitions ~ Dirichlet(1), {episode_length}-step episodes",
        **family_kwargs,
    )
