"""Propensity scores for reusing old data on a new task, as Meta-Q-Learning does (Fakoor et al. 2020).

A logistic regression tells meta-training replay (label 1) from the new task's data (label 0) by
their context features; for an old sample x with logit ℓ(x) = w·x + b, β(x) = exp(−ℓ(x)) is the
odds that x comes from the new task, the weight that makes the old data look like the new. Its
effective sample size ESS = (Σβ)² / (n Σβ²) ∈ (0, 1] says how much of the old data is like the
new; MQL's proximal coefficient is λ = 1 − ESS. Shapes: N samples of D features.
"""

import chex
import jax
import jax.numpy as jnp

NEWTON_STEPS = 25
"""Newton steps of the logistic fit: from zero, enough to converge on well-posed data (quadratic
convergence), fixed so the fit is one compiled loop."""


def logistic_fit(x: chex.Array, y: chex.Array, weights: chex.Array | None = None, *, l2: float = 1.0,
                 steps: int = NEWTON_STEPS) -> tuple[chex.Array, chex.Array]:
    """L2-regularised logistic regression by Newton's method (iteratively reweighted least squares).

    Minimises `0.5 * l2 * ‖w‖² + Σᵢ sᵢ · logloss(yᵢ, σ(w·xᵢ + b))`, the intercept unpenalised:
    scikit-learn's `LogisticRegression(C=1 / l2)` with `sample_weight=s`.

    Args:
      x: `[N, D]` features.
      y: `[N]` labels in {0, 1}.
      weights: `[N]` sample weights sᵢ ≥ 0 (0 leaves a row out); None: all 1.
      l2: the penalty on w, > 0.
      steps: Newton steps from w = 0, b = 0.

    Returns:
      `(w [D], b [])`.
    """
    x = x.astype(jnp.float32)
    s = jnp.ones(x.shape[:1], x.dtype) if weights is None else weights.astype(x.dtype)
    design = jnp.concatenate([x, jnp.ones_like(x[:, :1])], axis=1)  # [N, D + 1], the intercept last
    penalty = l2 * jnp.ones(design.shape[1], x.dtype).at[-1].set(0.0)  # [D + 1]

    def newton(theta, _):
        p = jax.nn.sigmoid(design @ theta)
        grad = design.T @ (s * (p - y)) + penalty * theta
        curvature = s * p * (1 - p)
        # a tiny ridge on the intercept keeps the system solvable when no row is weighted
        hessian = (design.T * curvature[None, :]) @ design + jnp.diag(penalty) + 1e-6 * jnp.eye(design.shape[1])
        return theta - jnp.linalg.solve(hessian, grad), None

    theta, _ = jax.lax.scan(newton, jnp.zeros(design.shape[1], x.dtype), None, length=steps)
    return theta[:-1], theta[-1]


def propensity_weights(x: chex.Array, w: chex.Array, b: chex.Array, clip: float) -> chex.Array:
    """β = exp(−(w·x + b)), clipped to [0, clip]: the new-task odds of each old sample. `[N]`.

    Args:
      x: `[N, D]` the old samples' features.
      w: `[D]` from `logistic_fit` (old = label 1).
      b: `[]` its intercept.
      clip: the largest weight (MQL clips β).

    Returns:
      `[N]` the weights.
    """
    return jnp.minimum(jnp.exp(-jnp.clip(x @ w + b, -30.0, 30.0)), clip)


def effective_sample_size(beta: chex.Array, mask: chex.Array | None = None) -> chex.Array:
    """ESS = (Σβ)² / (n Σβ²) over the n samples of `mask`, in (0, 1]; 0 when every β is 0. `[]`.

    Args:
      beta: `[N]` weights ≥ 0.
      mask: `[N]` 1 for samples that count; None: all.

    Returns:
      `[]` the normalised effective sample size.
    """
    mask = jnp.ones_like(beta) if mask is None else mask.astype(beta.dtype)
    beta = jnp.where(mask > 0, beta, 0.0)
    square = jnp.sum(beta ** 2)
    return jnp.where(square > 0, jnp.sum(beta) ** 2 / (jnp.maximum(jnp.sum(mask), 1.0) * jnp.where(square > 0, square, 1.0)),
                     0.0)
