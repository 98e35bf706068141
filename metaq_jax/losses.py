"""The Q-learning TD error for one transition, and the batched TD loss built from it."""

import chex
import jax
import jax.numpy as jnp

from metaq_jax.types import ApplyFn, Params, Transition


def td_error(q_tm1: chex.Array, a_tm1: chex.Array, r_t: chex.Array, discount_t: chex.Array,
             q_t: chex.Array) -> chex.Array:
    """Q-learning TD error of one transition: `r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.

    Args:
      q_tm1: `[A]` values of the online network at the observation.
      a_tm1: `[]` action taken.
      r_t: `[]` reward received.
      discount_t: `[]` γ, or 0 where the episode terminated (never cut for a truncation).
      q_t: `[A]` values of the target network at the next (pre-reset) observation.

    Returns:
      `[]` the TD error.
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    return r_t + discount_t * jnp.max(q_t) - q_tm1[a_tm1]


def td_loss(apply_fn: ApplyFn, params: Params, target_params: Params | None, batch: Transition,
            gamma: float, *, q_t: chex.Array | None = None) -> chex.Array:
    """Mean of `0.5 * td_error²` over a batch of transitions of any leading shape.

    The target network's parameters are an argument of their own, not a `stop_gradient` of
    `params`: differentiating this loss through an inner loop then keeps every second-order term.

    Args:
      apply_fn: `apply_fn(params, obs[..., *obs]) -> q[..., A]`.
      params: online parameters, differentiated.
      target_params: target-network parameters for the bootstrap values.
      batch: transitions with leading shape `[...]`.
      gamma: discount.
      q_t: `[..., A]` the target network's values at `batch.next_obs`, when already known: they
        do not depend on `params`, so an inner loop computes them once, not at every step.

    Returns:
      `[]` the loss.
    """
    q_tm1 = apply_fn(params, batch.obs)
    q_t = apply_fn(target_params, batch.next_obs) if q_t is None else q_t
    num_actions = q_tm1.shape[-1]
    discount = gamma * (1.0 - batch.terminated.astype(q_tm1.dtype))
    errors = jax.vmap(td_error)(
        q_tm1.reshape(-1, num_actions),
        batch.action.reshape(-1),
        batch.reward.reshape(-1).astype(q_tm1.dtype),
        discount.reshape(-1),
        q_t.reshape(-1, num_actions),
    )
    return 0.5 * jnp.mean(jnp.square(errors))
