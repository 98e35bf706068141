"""ε-greedy collection of transitions in M vmapped environments with `lax.scan`.

This is the one place that unpacks gymnax 1.0's six-value `step`.
"""

import chex
import jax
import jax.numpy as jnp
from gymnax.environments import environment

from metaq_jax.types import ApplyFn, EnvParams, Params, Transition


def epsilon_greedy(key: chex.PRNGKey, q_values: chex.Array, epsilon: chex.Numeric) -> chex.Array:
    """One action from `q_values[A]`: uniform with probability ε, else the argmax. `[]` int32."""
    chex.assert_rank(q_values, 1)
    k_explore, k_action = jax.random.split(key)
    random_action = jax.random.randint(k_action, (), 0, q_values.shape[-1])
    greedy = jnp.argmax(q_values).astype(jnp.int32)
    return jnp.where(jax.random.uniform(k_explore) < epsilon, random_action, greedy)


def collect(env: environment.Environment, apply_fn: ApplyFn, params: Params, env_params: EnvParams,
            key: chex.PRNGKey, *, num_envs: int, length: int, epsilon: chex.Numeric) -> Transition:
    """Roll out ε-greedy on Q(params) in `num_envs` fresh environments of one task.

    Every environment starts from a reset; episodes that end are reset by gymnax inside the
    rollout, with the same `env_params`, so the task never changes. Gradients do not flow into
    the data (actions are argmaxes; observations come from the simulator).

    Args:
      env: a gymnax environment.
      apply_fn: `apply_fn(params, obs[M, *obs]) -> q[M, A]`.
      params: the Q-network acting.
      env_params: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      epsilon: exploration rate.

    Returns:
      `Transition` with leading shape `[L, M]`.
    """
    params = jax.lax.stop_gradient(params)
    k_reset, k_steps = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), env_params)
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    act = jax.vmap(epsilon_greedy, in_axes=(0, 0, None))

    def step(carry, step_key):
        obs, state = carry
        k_act, k_env = jax.random.split(step_key)
        actions = act(jax.random.split(k_act, num_envs), apply_fn(params, obs), epsilon)
        next_obs, state, reward, terminated, truncated, info = step_env(
            jax.random.split(k_env, num_envs), state, actions, env_params
        )
        transition = Transition(
            obs=obs,
            action=actions,
            reward=reward.astype(jnp.float32),
            next_obs=info["final_observation"],
            terminated=terminated,
            truncated=truncated,
        )
        return (next_obs, state), transition

    _, transitions = jax.lax.scan(step, (obs, state), jax.random.split(k_steps, length))
    return transitions


def episode_return(transitions: Transition) -> chex.Array:
    """Mean undiscounted return per episode begun in a `[L, M]` rollout. `[]`.

    An episode still running at the end counts with the reward it has so far, so with `L` at
    least the episode length (e.g. nav2d, bandit) this is the plain episode return.
    """
    done = jnp.logical_or(transitions.terminated, transitions.truncated)  # [L, M]
    episodes = jnp.sum(done, axis=0) + 1 - done[-1]  # a final step that ends one starts none
    return jnp.mean(jnp.sum(transitions.reward, axis=0) / episodes)
