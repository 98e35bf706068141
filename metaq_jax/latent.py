"""Latent task inference as in PEARL (Rakelly et al. 2019): a Gaussian posterior q(z | c) over a
task variable z from a context c of transitions, invariant to their order.

Each context transition cᵢ = (s, one-hot a, r, s') is mapped by an MLP to a Gaussian factor
N(μᵢ, σᵢ²), σᵢ² by a softplus; the posterior is their product, σ² = 1 / Σᵢ σᵢ⁻² and
μ = σ² Σᵢ μᵢ / σᵢ², so it sharpens as the context grows. Shapes: C context transitions, F
features of one (`context_features`), Z the latent size.
"""

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from metaq_jax.types import Transition

MIN_VARIANCE = 1e-7
"""Floor of a factor's σᵢ² (PEARL's clamp), so an over-confident factor cannot divide by zero."""


def context_features(batch: Transition, num_actions: int | None) -> chex.Array:
    """One feature vector per transition: observation, action, reward, next observation.

    Args:
      batch: transitions with leading shape `[...]` and flat observations `[..., O]`.
      num_actions: A, for a one-hot discrete action; None for continuous actions `[..., A]`, as they are.

    Returns:
      `[..., F]`, F = 2·O + A + 1, float32.
    """
    action = (batch.action.astype(jnp.float32) if num_actions is None
              else jax.nn.one_hot(batch.action, num_actions, dtype=jnp.float32))
    return jnp.concatenate([batch.obs.astype(jnp.float32), action, batch.reward[..., None].astype(jnp.float32),
                            batch.next_obs.astype(jnp.float32)], axis=-1)


def product_of_gaussians(mean: chex.Array, variance: chex.Array,
                         mask: chex.Array | None = None) -> tuple[chex.Array, chex.Array]:
    """The normalised product of C diagonal Gaussian factors N(μᵢ, σᵢ²).

    Args:
      mean: `[C, Z]` the factors' means.
      variance: `[C, Z]` their variances (> 0).
      mask: `[C]` 1 for a factor present, 0 for an empty slot of a context buffer; None: all present.

    Returns:
      `(μ [Z], σ² [Z])` with σ² = 1 / Σᵢ maskᵢ σᵢ⁻² and μ = σ² Σᵢ maskᵢ μᵢ / σᵢ²; with no factor
      present, the prior N(0, I).
    """
    weight = jnp.ones(mean.shape[:1], mean.dtype) if mask is None else mask.astype(mean.dtype)
    precision = weight[:, None] / jnp.maximum(variance, MIN_VARIANCE)
    total = jnp.sum(precision, axis=0)
    empty = total == 0
    var = jnp.where(empty, 1.0, 1.0 / jnp.where(empty, 1.0, total))
    return jnp.where(empty, 0.0, var * jnp.sum(precision * mean, axis=0)), var


def kl_to_standard_normal(mean: chex.Array, variance: chex.Array) -> chex.Array:
    """KL(N(μ, diag σ²) ‖ N(0, I)), summed over the latent dimensions.

    Args:
      mean: `[..., Z]`.
      variance: `[..., Z]`, > 0.

    Returns:
      `[...]` ½ Σ (σ² + μ² − 1 − log σ²).
    """
    return 0.5 * jnp.sum(variance + mean ** 2 - 1.0 - jnp.log(variance), axis=-1)


def sample_latent(key: chex.PRNGKey, mean: chex.Array, variance: chex.Array) -> chex.Array:
    """A reparameterised draw z = μ + σ ε, ε ~ N(0, I), so gradients reach the encoder.

    Args:
      key: consumed.
      mean: `[..., Z]`.
      variance: `[..., Z]`.

    Returns:
      `[..., Z]`.
    """
    return mean + jnp.sqrt(variance) * jax.random.normal(key, mean.shape, mean.dtype)


class ContextEncoder(nn.Module):
    """An MLP from one context transition's features to its Gaussian factor (μᵢ, σᵢ²)."""

    latent_size: int  # Z
    hidden_sizes: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, features: chex.Array) -> tuple[chex.Array, chex.Array]:
        """Each transition's factor.

        Args:
          features: `[..., F]`.

        Returns:
          `(μ [..., Z], σ² [..., Z])`, σ² = softplus(·) floored at `MIN_VARIANCE`.
        """
        x = features
        for size in self.hidden_sizes:
            x = nn.relu(nn.Dense(size)(x))
        out = nn.Dense(2 * self.latent_size)(x)
        mean, raw = jnp.split(out, 2, axis=-1)
        return mean, jnp.maximum(jax.nn.softplus(raw), MIN_VARIANCE)


def posterior(encoder: ContextEncoder, params, features: chex.Array,
              mask: chex.Array | None = None) -> tuple[chex.Array, chex.Array]:
    """q(z | c): the product of the encoder's factors over a context of C transitions.

    Args:
      encoder: the `ContextEncoder`.
      params (Params): its variables.
      features: `[C, F]` the context (`context_features`).
      mask: `[C]` 1 for filled context slots; None: all.

    Returns:
      `(μ [Z], σ² [Z])`.
    """
    mean, variance = encoder.apply(params, features)
    return product_of_gaussians(mean, variance, mask)
