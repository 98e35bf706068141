"""ε-greedy collection of transitions in M vmapped environments with `lax.scan`.

This is the one place that steps gymnax environments during training, with gymnax 1.0's
auto-reset semantics.
"""

from typing import TYPE_CHECKING, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from metaq_jax.types import ApplyFn, EnvParams, Params, Transition

if TYPE_CHECKING:  # importing gymnax builds arrays, which starts JAX's backend
    from gymnax.environments import environment


def epsilon_greedy(key: chex.PRNGKey, q_values: chex.Array, epsilon: chex.Numeric) -> chex.Array:
    """Actions from `q_values[..., A]`: each uniform with probability ε, else the argmax. `[...]` int32.

    One batched draw for the whole batch rather than a key per environment. A Python ε ≥ 1
    gives the uniform actions alone (`q_values` then only gives the shape).

    Args:
      key: consumed.
      q_values: `[..., A]` with 0 to 2 leading axes.
      epsilon: ε, a Python number or a traced scalar.

    Returns:
      `[...]` int32 actions.
    """
    chex.assert_rank(q_values, {1, 2, 3})
    return greedy_or_random(q_values, exploration_draws(key, q_values.shape[:-1], q_values.shape[-1], epsilon))


class ExplorationDraws(NamedTuple):
    """The random part of ε-greedy actions, drawn ahead: `random_action[...]` uniform int32 and
    `explore[...]` bool, true with probability ε (absent for a random walk)."""

    random_action: chex.Array
    explore: chex.Array | None


def exploration_draws(key: chex.PRNGKey, shape: tuple[int, ...], num_actions: int,
                      epsilon: chex.Numeric) -> ExplorationDraws:
    """ε-greedy's random numbers for a batch of any `shape`, in two batched draws.

    Args:
      key: consumed.
      shape: the batch shape `[...]`, e.g. `(L, M)`.
      num_actions: A.
      epsilon: ε; a Python number ≥ 1 draws no `explore` mask.

    Returns:
      `ExplorationDraws` of shape `shape`, its `explore` None for a random walk.
    """
    k_explore, k_action = jax.random.split(key)
    random_action = jax.random.randint(k_action, shape, 0, num_actions)
    explore = None if is_random_walk(epsilon) else jax.random.uniform(k_explore, shape) < epsilon
    return ExplorationDraws(random_action, explore)


def greedy_or_random(q_values: chex.Array | None, draws: ExplorationDraws) -> chex.Array:
    """The uniform action where `draws.explore`, else the argmax of `q_values[..., A]`. `[...]`.

    A random walk's draws (no `explore`) give the uniform actions; `q_values` may then be None.

    Args:
      q_values: `[..., A]`, or None with a random walk's draws.
      draws: `ExplorationDraws` of shape `[...]`.

    Returns:
      `[...]` int32 actions.
    """
    if draws.explore is None:
        return draws.random_action
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    return jnp.where(draws.explore, draws.random_action, greedy)


def is_random_walk(epsilon: chex.Numeric) -> bool:
    """Whether ε is a Python number ≥ 1, known at trace time: every action uniform.

    Args:
      epsilon: ε, a Python number or an array (an array is never a random walk here).

    Returns:
      True for a Python int or float ≥ 1.
    """
    return isinstance(epsilon, (int, float)) and epsilon >= 1


RESET_FRACTION = 16  # the few-resets path draws M/16; a CartPole random walk ends 1 episode in 22.4 env steps


def step_with_reset(env: "environment.Environment", step_keys: chex.PRNGKey, reset_keys: chex.PRNGKey, state,
                    action: chex.Array, env_params: EnvParams, *, max_few: int | None = None):
    """gymnax 1.0's auto-resetting `step` for a batch of M environments of one task, keys given.

    The same transition as `vmap(env.step)`: step, truncation, and where an episode ended the
    state `env.reset_env(reset_keys[i])`. On a CPU each random draw costs a loop of its own
    (jax lowers threefry there as a rolled loop), and gymnax's `step` draws a reset for every
    environment at every step to keep the few it needs. Here, when at most `max_few` (default
    M/16) environments are done, only those draw, gathered by index; otherwise every one draws
    and keeps it where done. Both give the same states. Under `vmap` the `lax.cond` choosing
    between them runs both (it becomes a select), never a loop in lockstep.

    Args:
      env: a gymnax environment.
      step_keys: `[M]` keys for `env.step_env`.
      reset_keys: `[M]` keys for `env.reset_env`.
      state (environment.EnvState): `[M]` environment states.
      action: `[M]` actions.
      env_params: one task's parameters.
      max_few: the most done environments the gathered path resets.

    Returns:
      (tuple): `(obs[M], state[M], reward[M], terminated[M], truncated[M], final_obs[M])`, where
      `obs` is after the reset and `final_obs` before it.
    """
    num_envs = action.shape[0]
    max_few = max_few or -(-num_envs // RESET_FRACTION)
    final_obs, next_state, reward, terminated, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
        step_keys, state, action, env_params)
    truncated = jax.vmap(env.is_truncated, in_axes=(0, None))(next_state, env_params)
    done = jnp.logical_or(terminated, truncated)
    reset = jax.vmap(env.reset_env, in_axes=(0, None))

    def reset_few(stepped):
        idx, = jnp.nonzero(done, size=max_few, fill_value=num_envs)  # M is out of bounds: dropped
        return jax.tree.map(lambda leaf, new: leaf.at[idx].set(new, mode="drop"),
                            stepped, reset(reset_keys[jnp.minimum(idx, num_envs - 1)], env_params))

    def reset_all(stepped):
        return jax.tree.map(lambda new, leaf: jnp.where(done.reshape(done.shape + (1,) * (leaf.ndim - 1)), new, leaf),
                            reset(reset_keys, env_params), stepped)

    obs, next_state = jax.lax.cond(jnp.sum(done) <= max_few, reset_few, reset_all, (final_obs, next_state))
    return obs, next_state, reward, terminated, truncated, final_obs


class RolloutStart(NamedTuple):
    """Fresh environments of one task and every step's random numbers, drawn before the scan."""

    obs: chex.Array  # [M, *obs]
    state: chex.ArrayTree  # [M] environment states
    per_step: tuple  # (ExplorationDraws [L, M], step keys [L, M], reset keys [L, M])


def start_rollout(env: "environment.Environment", env_params: EnvParams, key: chex.PRNGKey, *, num_envs: int,
                  length: int, num_actions: int, epsilon: chex.Numeric) -> RolloutStart:
    """Reset `num_envs` environments and draw the random numbers of `length` steps in a few batched
    draws: on a CPU a draw inside the scanned loop costs a loop of its own per step.

    Args:
      env: a gymnax environment.
      env_params: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      num_actions: A.
      epsilon: exploration rate.

    Returns:
      The `RolloutStart`; its `per_step` is the `xs` of a `lax.scan` over the L steps.
    """
    k_start, k_explore, k_step, k_reset = jax.random.split(key, 4)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_start, num_envs), env_params)
    per_step = (exploration_draws(k_explore, (length, num_envs), num_actions, epsilon),
                jax.random.split(k_step, (length, num_envs)), jax.random.split(k_reset, (length, num_envs)))
    return RolloutStart(obs, state, per_step)


def collect(env: "environment.Environment", apply_fn: ApplyFn, params: Params, env_params: EnvParams,
            key: chex.PRNGKey, *, num_envs: int, length: int, epsilon: chex.Numeric) -> Transition:
    """Roll out ε-greedy on Q(params) in `num_envs` fresh environments of one task.

    Every environment starts from a reset; episodes that end are reset inside the rollout, with
    the same `env_params`, so the task never changes. Gradients do not flow into the data
    (actions are argmaxes; observations come from the simulator). A Python ε ≥ 1 (a uniform
    random walk) never evaluates the network. The random numbers of every step (exploration,
    step keys, reset keys) are drawn before the scan in a few batched draws: on a CPU a draw
    inside the loop costs a loop of its own per step.

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
    start = start_rollout(env, env_params, key, num_envs=num_envs, length=length, num_actions=env.num_actions,
                          epsilon=epsilon)
    _, transitions = jax.lax.scan(acting_step(env, apply_fn, params, env_params, epsilon),
                                  (start.obs, start.state), start.per_step)
    return transitions


def acting_step(env: "environment.Environment", apply_fn: ApplyFn, params: Params, env_params: EnvParams,
                epsilon: chex.Numeric) -> Callable:
    """The scanned step of `collect`: act ε-greedy on Q(params) in M envs, step them, reset the done.

    Args:
      env: a gymnax environment.
      apply_fn: `apply_fn(params, obs[M, *obs]) -> q[M, A]`.
      params: the Q-network acting (no gradient flows into the data).
      env_params: one task's parameters (no batch axis).
      epsilon: exploration rate; a Python ε ≥ 1 never evaluates the network.

    Returns:
      `step((obs[M], state[M]), per_step slice) -> ((obs, state), Transition[M])`, for `lax.scan`
      over `start_rollout`'s `per_step`.
    """
    params = jax.lax.stop_gradient(params)

    def step(carry, xs):
        obs, state = carry
        draws, step_keys, reset_keys = xs
        actions = greedy_or_random(None if is_random_walk(epsilon) else apply_fn(params, obs), draws)
        next_obs, state, reward, terminated, truncated, final_obs = step_with_reset(
            env, step_keys, reset_keys, state, actions, env_params)
        transition = Transition(obs=obs, action=actions, reward=reward.astype(jnp.float32),
                                next_obs=final_obs, terminated=terminated, truncated=truncated)
        return (next_obs, state), transition

    return step


def episode_return(transitions: Transition) -> chex.Array:
    """Mean undiscounted return per episode begun in a `[L, M]` rollout. `[]`.

    An episode still running at the end counts with the reward it has so far, so with `L` at
    least the episode length (e.g. nav2d, bandit) this is the plain episode return.

    Args:
      transitions: a `Transition` with leading shape `[L, M]`.

    Returns:
      `[]` the total reward divided by the episodes begun, averaged over the M environments.
    """
    done = jnp.logical_or(transitions.terminated, transitions.truncated)  # [L, M]
    episodes = jnp.sum(done, axis=0) + 1 - done[-1]  # a final step that ends one starts none
    return jnp.mean(jnp.sum(transitions.reward, axis=0) / episodes)


def episode_returns(transitions: Transition, num_episodes: int) -> chex.Array:
    """The undiscounted return of each of the first `num_episodes` episodes, averaged over envs.

    Each environment's steps belong to its 1st, 2nd, … episode in turn; a trial of
    `num_episodes × episode length` steps completes at least that many in every environment.

    Args:
      transitions: a `Transition` with leading shape `[L, M]`.
      num_episodes: E.

    Returns:
      `[E]` mean return of episode 1..E over the M environments.
    """
    done = jnp.logical_or(transitions.terminated, transitions.truncated).astype(jnp.int32)  # [L, M]
    episode = jnp.cumsum(done, axis=0) - done  # which episode each step belongs to, from 0
    member = episode[..., None] == jnp.arange(num_episodes)[None, None]  # [L, M, E]
    return jnp.mean(jnp.sum(jnp.where(member, transitions.reward[..., None], 0.0), axis=0), axis=0)


EXPLORATION_NOISE = 0.1
"""σ of the Gaussian noise on a deterministic actor's action when it explores (TD3's default)."""


def collect_actions(env: "environment.Environment", actor_fn: Callable[[Params, chex.Array], chex.Array],
                    params: Params, env_params: EnvParams, key: chex.PRNGKey, *, num_envs: int, length: int,
                    epsilon: chex.Numeric, noise: chex.Numeric = EXPLORATION_NOISE) -> Transition:
    """`collect` for continuous actions in [−1, 1]ᴬ: ε-uniform, else the actor's action plus noise.

    Each step an action is uniform in the box with probability ε, else clip(π(s) + σ·N(0, I),
    −1, 1); a Python ε ≥ 1 (a random walk) never evaluates the actor, and ε = 0 with σ = 0 is the
    actor's own action. Auto-reset and the random numbers drawn before the scan are `collect`'s.

    Args:
      env: a gymnax environment with a `Box` action space of shape `(A,)`.
      actor_fn: `actor_fn(params, obs[M, *obs]) -> action[M, A]`.
      params: the actor's parameters (no gradient flows into the data).
      env_params: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      epsilon: the probability of a uniform action.
      noise: σ of the Gaussian noise on the actor's action.

    Returns:
      `Transition` with leading shape `[L, M]`, `action` `[L, M, A]` float32.
    """
    return collect_actions_with_memory(env, lambda p, memory, obs, previous: (memory, actor_fn(p, obs)), params, (),
                                       env_params, key, num_envs=num_envs, length=length, epsilon=epsilon,
                                       noise=noise)


def collect_actions_with_memory(env: "environment.Environment", policy: Callable, params: Params,
                                memory: chex.ArrayTree, env_params: EnvParams, key: chex.PRNGKey, *, num_envs: int,
                                length: int, epsilon: chex.Numeric,
                                noise: chex.Numeric = EXPLORATION_NOISE) -> Transition:
    """`collect_actions` of an actor with memory, carried through every step, across episode ends.

    Args:
      env: a gymnax environment with a `Box` action space of shape `(A,)`.
      policy: `policy(params, memory, obs[M, *obs], previous) -> (memory, action[M, A])`, where
        `previous = (action[M, A], reward[M], done[M])` of the step before (zeros at the first).
      params: the actor's parameters (no gradient flows into the data).
      memory: the memory at the first step.
      env_params: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      epsilon: the probability of a uniform action (a Python ε ≥ 1 never runs the policy).
      noise: σ of the Gaussian noise on the actor's action.

    Returns:
      `Transition` with leading shape `[L, M]`, `action` `[L, M, A]` float32.
    """
    size = env.action_space(env_params).shape[0]
    k_start, k_uniform, k_explore, k_noise, k_step, k_reset = jax.random.split(key, 6)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_start, num_envs), env_params)
    walk = is_random_walk(epsilon)
    per_step = (jax.random.uniform(k_uniform, (length, num_envs, size), minval=-1.0, maxval=1.0),
                None if walk else jax.random.uniform(k_explore, (length, num_envs)) < epsilon,
                None if walk else noise * jax.random.normal(k_noise, (length, num_envs, size)),
                jax.random.split(k_step, (length, num_envs)), jax.random.split(k_reset, (length, num_envs)))
    params = jax.lax.stop_gradient(params)

    def step(carry, xs):
        obs, state, memory, previous = carry
        uniform, explore, gaussian, step_keys, reset_keys = xs  # explore, gaussian: None on a random walk
        actions = uniform
        if not walk:
            memory, acted = policy(params, memory, obs, previous)
            actions = jnp.where(explore[:, None], uniform, jnp.clip(acted + gaussian, -1.0, 1.0))
        next_obs, state, reward, terminated, truncated, final_obs = step_with_reset(
            env, step_keys, reset_keys, state, actions, env_params)
        transition = Transition(obs=obs, action=actions, reward=reward.astype(jnp.float32),
                                next_obs=final_obs, terminated=terminated, truncated=truncated)
        return (next_obs, state, memory, (actions, transition.reward, terminated | truncated)), transition

    previous = (jnp.zeros((num_envs, size), jnp.float32), jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, bool))
    return jax.lax.scan(step, (obs, state, memory, previous), per_step)[1]
