"""ε-greedy collection of transitions in M vmapped environments with `lax.scan`.

This is the one place that steps gymnax environments during training, with gymnax 1.0's
auto-reset semantics.
"""

import chex
import jax
import jax.numpy as jnp
from gymnax.environments import environment

from metaq_jax.types import ApplyFn, EnvParams, Params, Transition


def epsilon_greedy(key: chex.PRNGKey, q_values: chex.Array, epsilon: chex.Numeric) -> chex.Array:
    """Actions from `q_values[..., A]`: each uniform with probability ε, else the argmax. `[...]` int32.

    One batched draw for the whole batch rather than a key per environment: on a CPU the
    per-environment key splits cost more than the environments' physics. A Python ε ≥ 1 draws
    the uniform actions alone (`q_values` then only gives the shape).
    """
    chex.assert_rank(q_values, {1, 2, 3})
    batch, num_actions = q_values.shape[:-1], q_values.shape[-1]
    k_explore, k_action = jax.random.split(key)
    random_action = jax.random.randint(k_action, batch, 0, num_actions)
    if is_random_walk(epsilon):
        return random_action
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    return jnp.where(jax.random.uniform(k_explore, batch) < epsilon, random_action, greedy)


def is_random_walk(epsilon: chex.Numeric) -> bool:
    """Whether ε is a Python number ≥ 1, known at trace time: every action uniform."""
    return isinstance(epsilon, (int, float)) and epsilon >= 1


def step_with_reset(env: environment.Environment, key: chex.PRNGKey, state, action: chex.Array,
                    env_params: EnvParams):
    """gymnax 1.0's auto-resetting `step` for a batch of M environments of one task.

    The same transition as `vmap(env.step)` (step, truncation, reset where done), with the keys
    of all environments split in two batched calls instead of once more inside each environment:
    the reset's random numbers are most of a CartPole step's cost.

    Returns:
      `(obs[M], state[M], reward[M], terminated[M], truncated[M], final_obs[M])`, where `obs` is
      after the reset and `final_obs` before it.
    """
    num_envs = action.shape[0]
    k_step, k_reset = jax.random.split(key)
    final_obs, next_state, reward, terminated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
        jax.random.split(k_step, num_envs), state, action, env_params)
    truncated = jax.vmap(env.is_truncated, in_axes=(0, None))(next_state, env_params)
    reset_obs, reset_state = jax.vmap(env.reset_env, in_axes=(0, None))(
        jax.random.split(k_reset, num_envs), env_params)
    done = jnp.logical_or(terminated, truncated)

    def where_done(reset_leaf, leaf):
        return jnp.where(done.reshape(done.shape + (1,) * (leaf.ndim - 1)), reset_leaf, leaf)

    obs = jax.tree.map(where_done, reset_obs, final_obs)
    next_state = jax.tree.map(where_done, reset_state, next_state)
    return obs, next_state, reward, terminated, truncated, final_obs


def collect(env: environment.Environment, apply_fn: ApplyFn, params: Params, env_params: EnvParams,
            key: chex.PRNGKey, *, num_envs: int, length: int, epsilon: chex.Numeric) -> Transition:
    """Roll out ε-greedy on Q(params) in `num_envs` fresh environments of one task.

    Every environment starts from a reset; episodes that end are reset inside the rollout, with
    the same `env_params`, so the task never changes. Gradients do not flow into the data
    (actions are argmaxes; observations come from the simulator). A Python ε ≥ 1 (a uniform
    random walk) never evaluates the network.

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

    def q_values(obs):
        if is_random_walk(epsilon):  # only the shape is used: every action is uniform
            return jnp.zeros(jax.eval_shape(apply_fn, params, obs).shape)
        return apply_fn(params, obs)

    def step(carry, step_key):
        obs, state = carry
        k_act, k_env = jax.random.split(step_key)
        actions = epsilon_greedy(k_act, q_values(obs), epsilon)
        next_obs, state, reward, terminated, truncated, final_obs = step_with_reset(
            env, k_env, state, actions, env_params)
        transition = Transition(obs=obs, action=actions, reward=reward.astype(jnp.float32),
                                next_obs=final_obs, terminated=terminated, truncated=truncated)
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
