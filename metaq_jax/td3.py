"""TD3 (Fujimoto et al. 2018), the Q-learner of continuous actions, as pure functions.

A Q-learner over continuous actions is an actor-critic: twin critics Q₁, Q₂(s, a), a
deterministic actor π(s) ∈ [−1, 1]ᴬ, a critic target from the smaller twin at the target actor's
action with clipped noise added (target policy smoothing), and the actor updated less often than
the critics (delayed policy updates). It is MQL's base learner, and what the gradient-based
meta-learners adapt on continuous-action families.

The parameters are one pytree `{"actor": φ, "critic": θ}`; the target networks' are an argument
of their own, as in `losses.td_loss`. In an inner loop each part follows the gradient of its own
loss (`td3_grads`): the critics' TD loss, the actor's −Q₁(s, π(s)). That is not the gradient of
their sum, which would push the critics toward the actor's objective; nor is it made with a
`stop_gradient` on the critics inside the actor's loss, which would drop the actor step's
dependence on θ from a meta-gradient. Differentiating `inner.adapt_by_grads(params, td3_grads…)`
is therefore exact second order through both parts.
"""

import dataclasses
from typing import Callable, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from metaq_jax.types import Params, Transition

ActorFn = Callable[[Params, chex.Array], chex.Array]
"""`actor_fn(actor_params, obs[..., O]) -> action[..., A]` in [−1, 1]."""
CriticFn = Callable[[Params, chex.Array, chex.Array], chex.Array]
"""`critic_fn(critic_params, obs[..., O], action[..., A]) -> q[..., 2]`, the twin critics' values."""


class Actor(nn.Module):
    """A deterministic policy: `obs[..., O] -> action[..., A]`, an MLP with a tanh output.

    Attributes:
      action_size: A.
      hidden_sizes: the width of each hidden layer.
      activation: applied after each hidden layer.
    """

    action_size: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, obs: chex.Array) -> chex.Array:
        """The action in [−1, 1]ᴬ.

        Args:
          obs: `[..., O]` observations.

        Returns:
          `[..., A]` actions.
        """
        x = obs
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        return jnp.tanh(nn.Dense(self.action_size)(x))


class TwinCritic(nn.Module):
    """Two independent Q-networks of (observation, action): `(obs, action) -> q[..., 2]`.

    Attributes:
      hidden_sizes: the width of each hidden layer of each critic.
      activation: applied after each hidden layer.
    """

    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, obs: chex.Array, action: chex.Array) -> chex.Array:
        """Both critics' values.

        Args:
          obs: `[..., O]` observations.
          action: `[..., A]` actions.

        Returns:
          `[..., 2]`: Q₁ and Q₂.
        """
        values = []
        for _ in range(2):
            x = jnp.concatenate([obs, action], axis=-1)
            for width in self.hidden_sizes:
                x = self.activation(nn.Dense(width)(x))
            values.append(nn.Dense(1)(x)[..., 0])
        return jnp.stack(values, axis=-1)


@dataclasses.dataclass(frozen=True)
class TD3:
    """TD3's networks and constants, the defaults of Fujimoto et al. (2018).

    Attributes:
      actor_fn: the actor's apply function.
      critic_fn: the twin critics' apply function.
      gamma: the discount.
      policy_noise: σ of the Gaussian noise on the target actor's action.
      noise_clip: c: that noise is clipped to [−c, c].
      policy_delay: d: the actor moves at every d-th step (steps d − 1, 2d − 1, …).
    """

    actor_fn: ActorFn
    critic_fn: CriticFn
    gamma: float = 0.99
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2


def init_params(key: chex.PRNGKey, actor: nn.Module, critic: nn.Module, obs: chex.Array,
                action_size: int) -> Params:
    """`{"actor": φ, "critic": θ}` for one observation `[O]`.

    Args:
      key: consumed.
      actor: e.g. `Actor(A)`.
      critic: e.g. `TwinCritic()`.
      obs: `[O]` an example observation.
      action_size: A.

    Returns:
      The parameters.
    """
    k_actor, k_critic = jax.random.split(key)
    return {"actor": actor.init(k_actor, obs),
            "critic": critic.init(k_critic, obs, jnp.zeros((action_size,), obs.dtype))}


def smoothed_target_actions(td3: TD3, target_actor: Params, next_obs: chex.Array,
                            key: chex.PRNGKey) -> chex.Array:
    """The target actor's action with clipped Gaussian noise, clipped to [−1, 1].

    Args:
      td3: the constants.
      target_actor: φ′.
      next_obs: `[..., O]`.
      key: consumed: the noise.

    Returns:
      `[..., A]`: clip(π′(s′) + clip(σ·ε, −c, c), −1, 1), ε ~ N(0, I).
    """
    action = td3.actor_fn(target_actor, next_obs)
    noise = jnp.clip(td3.policy_noise * jax.random.normal(key, action.shape, action.dtype),
                     -td3.noise_clip, td3.noise_clip)
    return jnp.clip(action + noise, -1.0, 1.0)


def critic_targets(td3: TD3, target_params: Params, batch: Transition, key: chex.PRNGKey) -> chex.Array:
    """y = r + γ (1 − terminated) min(Q₁′, Q₂′)(s′, ã), ã the smoothed target action.

    Args:
      td3: the constants.
      target_params: `{"actor": φ′, "critic": θ′}`.
      batch: transitions of leading shape `[...]` (`action` `[..., A]`).
      key: consumed: the smoothing noise.

    Returns:
      `[...]` targets; a termination cuts the bootstrap, a truncation does not.
    """
    action = smoothed_target_actions(td3, target_params["actor"], batch.next_obs, key)
    value = jnp.min(td3.critic_fn(target_params["critic"], batch.next_obs, action), axis=-1)
    discount = td3.gamma * (1.0 - batch.terminated.astype(value.dtype))
    return batch.reward.astype(value.dtype) + discount * value


def weighted_mean(x: chex.Array, weights: chex.Array | None) -> chex.Array:
    """The mean of `x` `[...]`, or Σ w·x / Σ w with `weights` `[...]` (0 where Σ w is 0). `[]`.

    Args:
      x: `[...]` the values.
      weights: `[...]` a weight per value; None: the plain mean.

    Returns:
      `[]` the (weighted) mean.
    """
    if weights is None:
        return jnp.mean(x)
    total = jnp.sum(weights)
    return jnp.sum(weights * x) / jnp.where(total > 0, total, 1.0)


def critic_loss(td3: TD3, critic_params: Params, batch: Transition, targets: chex.Array,
                weights: chex.Array | None = None) -> chex.Array:
    """Σ over the twins of the mean of ½ (Q_i(s, a) − y)².

    Args:
      td3: the networks.
      critic_params: θ, differentiated.
      batch: transitions `[...]`.
      targets: `[...]` from `critic_targets`.
      weights: `[...]` a weight per transition (e.g. MQL's β), a weighted mean; None: the plain mean.

    Returns:
      `[]` the loss.
    """
    q = td3.critic_fn(critic_params, batch.obs, batch.action)
    if weights is None:
        return jnp.sum(0.5 * jnp.mean(jnp.square(q - targets[..., None]).reshape(-1, 2), axis=0))
    return weighted_mean(jnp.sum(0.5 * jnp.square(q - targets[..., None]), axis=-1), weights)


def actor_loss(td3: TD3, actor_params: Params, critic_params: Params, obs: chex.Array,
               weights: chex.Array | None = None) -> chex.Array:
    """−mean Q₁(s, π(s)): the deterministic policy gradient's objective.

    Args:
      td3: the networks.
      actor_params: φ, differentiated.
      critic_params: θ; the actor's gradient depends on it (and a meta-gradient through it).
      obs: `[..., O]`.
      weights: `[...]` a weight per observation, a weighted mean; None: the plain mean.

    Returns:
      `[]` the loss.
    """
    return -weighted_mean(td3.critic_fn(critic_params, obs, td3.actor_fn(actor_params, obs))[..., 0], weights)


def td3_grads(td3: TD3, params: Params, data: tuple[Transition, Params, chex.PRNGKey], step: chex.Array) -> Params:
    """One TD3 step's direction: each part's gradient of its own loss (`inner.adapt_by_grads`).

    Args:
      td3: the networks and constants.
      params: `{"actor": φ, "critic": θ}`.
      data: `(batch, target_params, key)`: transitions `[...]`, the target networks' parameters
        and a key whose `fold_in(key, step)` draws this step's smoothing noise.
      step: `[]` int32, the inner step's index: the actor moves when `step % d == d − 1`.

    Returns:
      `{"actor": ∇_φ actor_loss (zero on a delayed step), "critic": ∇_θ critic_loss}`, both at
      the same `params` (the parts move together, not the critic first as in the paper's loop).
    """
    batch, target_params, key = data
    targets = critic_targets(td3, target_params, batch, jax.random.fold_in(key, step))
    critic = jax.grad(critic_loss, argnums=1)(td3, params["critic"], batch, targets)
    actor = jax.grad(actor_loss, argnums=1)(td3, params["actor"], params["critic"], batch.obs)
    moves = step % td3.policy_delay == td3.policy_delay - 1
    return {"actor": jax.tree.map(lambda g: jnp.where(moves, g, jnp.zeros_like(g)), actor), "critic": critic}
