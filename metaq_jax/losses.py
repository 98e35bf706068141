"""The Q-learning TD error for one transition, and the batched TD loss built from it."""

import chex
import jax
import jax.numpy as jnp
import rlax

from metaq_jax.types import ApplyFn, Params, Transition


def td_error(q_tm1: chex.Array, a_tm1: chex.Array, r_t: chex.Array, discount_t: chex.Array,
             q_t: chex.Array) -> chex.Array:
    """Q-learning TD error of one transition: `r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]`.

    `rlax.q_learning` without its `stop_gradient` on the target: the target values come from
    target parameters passed on their own, so nothing needs stopping, and a stop would drop
    second-order terms wherever a caller bootstraps from the parameters being differentiated.

    Args:
      q_tm1: `[A]` values of the online network at the observation.
      a_tm1: `[]` action taken.
      r_t: `[]` reward received.
      discount_t: `[]` γ, or 0 where the episode terminated (never cut for a truncation).
      q_t: `[A]` values of the target network at the next (pre-reset) observation.

    Returns:
      `[]` the TD error.
    """
    return rlax.q_learning(q_tm1, a_tm1, r_t, discount_t, q_t, stop_target_gradients=False)


def double_td_error(q_tm1: chex.Array, a_tm1: chex.Array, r_t: chex.Array, discount_t: chex.Array,
                    q_t_value: chex.Array, q_t_selector: chex.Array) -> chex.Array:
    """Double Q-learning TD error of one transition (van Hasselt et al. 2016).

    `r_t + discount_t * q_t_value[argmax_a q_t_selector[a]] - q_tm1[a_tm1]`: the online network
    picks the next action and the target network values it. `rlax.double_q_learning`, without
    its `stop_gradient` for the reason given in `td_error`.

    Args:
      q_tm1: `[A]` values of the online network at the observation.
      a_tm1: `[]` action taken.
      r_t: `[]` reward received.
      discount_t: `[]` γ, or 0 where the episode terminated.
      q_t_value: `[A]` values of the target network at the next observation.
      q_t_selector: `[A]` values of the online network at the next observation.

    Returns:
      `[]` the TD error.
    """
    return rlax.double_q_learning(q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector,
                                  stop_target_gradients=False)


def td_loss(apply_fn: ApplyFn, params: Params, target_params: Params | None, batch: Transition,
            gamma: float, *, q_t: chex.Array | None = None, double_q: bool = False,
            weights: chex.Array | None = None) -> chex.Array:
    """Mean of `0.5 * td_error²` (or `double_td_error²`) over transitions of any leading shape.

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
      double_q: bootstrap from the target network's value of the online network's greedy
        action (`double_td_error`) instead of the target network's maximum.
      weights: `[...]` a weight per transition (e.g. 0 for slots of a buffer not yet filled);
        the loss is then their weighted mean (0 when they are all 0). None: every transition counts once.

    Returns:
      `[]` the loss.
    """
    q_tm1 = apply_fn(params, batch.obs)
    q_t = apply_fn(target_params, batch.next_obs) if q_t is None else q_t
    num_actions = q_tm1.shape[-1]
    discount = gamma * (1.0 - batch.terminated.astype(q_tm1.dtype))
    per_transition = (q_tm1.reshape(-1, num_actions), batch.action.reshape(-1),
                      batch.reward.reshape(-1).astype(q_tm1.dtype), discount.reshape(-1),
                      q_t.reshape(-1, num_actions))
    if double_q:
        selector = apply_fn(params, batch.next_obs).reshape(-1, num_actions)
        errors = jax.vmap(double_td_error)(*per_transition, selector)
    else:
        errors = jax.vmap(td_error)(*per_transition)
    if weights is None:
        return 0.5 * jnp.mean(jnp.square(errors))
    weights = weights.reshape(-1).astype(errors.dtype)
    total = jnp.sum(weights)
    return 0.5 * jnp.sum(weights * jnp.square(errors)) / jnp.where(total > 0, total, 1.0)
