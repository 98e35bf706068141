"""RL² (Duan et al. 2016) as a Q-learner: a recurrent Q-network whose adaptation is its carry.

A trial is L steps on one task in M environments. Episodes that end inside it are reset with the
same task, and the network's carry runs on across them, so what it learned of the task in one
episode serves the next; the carry starts afresh only when a trial (a task) starts. The
objective is the return of the whole trial: the TD target bootstraps across episode ends, from
the step after (the next episode's first), and is cut only at the trial's last step. Targets are
double-Q: the online network picks the next action, the target network values it.
"""

from typing import TYPE_CHECKING, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from metaq_jax import losses, rollout
from metaq_jax.networks import rl2_inputs
from metaq_jax.types import EnvParams, Params, Transition

if TYPE_CHECKING:  # importing gymnax builds arrays, which starts JAX's backend
    from gymnax.environments import environment

Carry = chex.ArrayTree
RecurrentApplyFn = Callable[[Params, Carry, chex.Array], tuple[Carry, chex.Array]]
"""`apply_fn(params, carry, inputs[..., F]) -> (carry, q[..., A])`: one step of a recurrent Q-network."""


class Trial(NamedTuple):
    """One task's trial in M environments: what the network saw and what happened, `[L, M]`."""

    inputs: chex.Array  # [L, M, F] the network's input at each step (`rl2_inputs`)
    transitions: Transition  # [L, M]; next_obs is the pre-reset observation, as in `rollout.collect`


def unroll(apply_fn: RecurrentApplyFn, params: Params, carry: Carry, inputs: chex.Array) -> chex.Array:
    """The Q-values of a recurrent network run over a sequence from `carry`.

    Args:
      apply_fn: one step of the network.
      params: its parameters.
      carry: the carry before the first step, batch shape `[...]`.
      inputs: `[L, ..., F]`.

    Returns:
      `[L, ..., A]` the Q-values at every step.
    """
    def step(c, x):
        return apply_fn(params, c, x)

    return jax.lax.scan(step, carry, inputs)[1]


def collect_trial(env: "environment.Environment", apply_fn: RecurrentApplyFn, params: Params,
                  initial_carry: Carry, task: EnvParams, key: chex.PRNGKey, *, num_envs: int, length: int,
                  epsilon: chex.Numeric) -> Trial:
    """Run one trial of `length` steps, ε-greedy on the recurrent Q-network, in `num_envs` envs.

    The carry starts at `initial_carry` and is never reset inside the trial; an episode that ends
    is reset with the same `task`, and the next input says so (done flag 1). As in
    `rollout.collect`, every step's random numbers are drawn before the scan and no gradient
    flows into the data.

    Args:
      env: a gymnax environment.
      apply_fn: one step of the network, `(params, carry[M], inputs[M, F]) -> (carry, q[M, A])`.
      params: the network acting.
      initial_carry: the carry at the trial's start, batch shape `[M]`.
      task: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      epsilon: exploration rate.

    Returns:
      The `Trial`, `[L, M]`.
    """
    params = jax.lax.stop_gradient(params)
    num_actions = env.num_actions
    begin = rollout.start_rollout(env, task, key, num_envs=num_envs, length=length, num_actions=num_actions,
                                  epsilon=epsilon)

    def step(carry, xs):
        obs, state, net_carry, prev_action, prev_reward, prev_done = carry
        draws, step_keys, reset_keys = xs
        inputs = rl2_inputs(obs, prev_action, prev_reward, prev_done, num_actions)
        net_carry, q = apply_fn(params, net_carry, inputs)
        actions = rollout.greedy_or_random(q, draws)
        next_obs, state, reward, terminated, truncated, final_obs = rollout.step_with_reset(
            env, step_keys, reset_keys, state, actions, task)
        reward = reward.astype(jnp.float32)
        transition = Transition(obs=obs, action=actions, reward=reward, next_obs=final_obs,
                                terminated=terminated, truncated=truncated)
        return (next_obs, state, net_carry, actions, reward, terminated | truncated), (inputs, transition)

    start = (begin.obs, begin.state, initial_carry, jnp.full(num_envs, -1, jnp.int32),
             jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, bool))
    _, (inputs, transitions) = jax.lax.scan(step, start, begin.per_step)
    return Trial(inputs=inputs, transitions=transitions)


def trial_td_loss(apply_fn: RecurrentApplyFn, params: Params, target_params: Params, initial_carry: Carry,
                  trial: Trial, gamma: chex.Numeric) -> chex.Array:
    """The double-Q TD loss of a whole trial, by backpropagation through it.

    Step t's target is `r_t + γ Q̄_{t+1}(argmax Q_{t+1})` with the values of both networks run
    over the trial from `initial_carry`; episode ends inside the trial do not cut it (the next
    step is the next episode's first, and the carry runs on); the trial's last step has no next
    step: its target is `r_{L-1}`.

    Args:
      apply_fn: one step of the network.
      params: online parameters, differentiated (through the whole trial).
      target_params: target-network parameters.
      initial_carry: the carry at the trial's start, batch shape `[M]`.
      trial: `[L, M]` from `collect_trial`.
      gamma: discount.

    Returns:
      `[]` the mean of `0.5 * error²` over the L × M steps.
    """
    q = unroll(apply_fn, params, initial_carry, trial.inputs)  # [L, M, A]
    q_target = unroll(apply_fn, target_params, initial_carry, trial.inputs)
    num_actions = q.shape[-1]

    def next_step(values):  # step t + 1's values at t; the last slot is never bootstrapped from
        return jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])

    rewards = trial.transitions.reward.astype(q.dtype)
    discount = jnp.full(rewards.shape, gamma, q.dtype).at[-1].set(0.0)
    errors = jax.vmap(losses.double_td_error)(
        q.reshape(-1, num_actions), trial.transitions.action.reshape(-1), rewards.reshape(-1),
        discount.reshape(-1), next_step(q_target).reshape(-1, num_actions), next_step(q).reshape(-1, num_actions))
    return 0.5 * jnp.mean(jnp.square(errors))
