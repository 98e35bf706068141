"""The differentiable inner loop: SGD adaptation of any parameters on any loss."""

import jax
import jax.numpy as jnp

from metaq_jax.types import Data, GradFn, LossFn, Params


def adapt(params: Params, loss_fn: LossFn, data: Data, *, steps: int, lr: float | Params,
          first_order: bool = False, remat: bool = False, path: bool = False) -> Params:
    """`steps` SGD steps `params <- params - lr * grad(loss_fn)(params, data)`, in `lax.scan`.

    Differentiating the result with respect to `params` gives the exact (second-order) MAML
    gradient, through every inner step.

    Args:
      params: the starting parameters θ.
      loss_fn: `loss_fn(params, data) -> scalar`.
      data: the fixed data every step uses.
      steps: K, a Python int (0 returns `params`).
      lr: α, a scalar, or a pytree like `params` of per-parameter rates (Meta-SGD).
      first_order: stop gradients through the inner gradients (first-order MAML): then
        d adapt / d θ is the identity.
      remat: wrap the scanned step in `jax.checkpoint`: the backward pass recomputes each
        step instead of storing it, the result being identical.
      path: return the parameters after every step, stacked `[steps, ...]`, not only the last.

    Returns:
      The adapted parameters, same structure as `params` (with a leading `[steps]` if `path`).
    """
    return adapt_by_grads(params, lambda p, d, _: jax.grad(loss_fn)(p, d), data, steps=steps, lr=lr,
                          first_order=first_order, remat=remat, path=path)


def adapt_by_grads(params: Params, grad_fn: GradFn, data: Data, *, steps: int, lr: float | Params,
                   first_order: bool = False, remat: bool = False, path: bool = False) -> Params:
    """`adapt` with the step direction given by `grad_fn` instead of one loss's gradient.

    For learners whose parts follow losses of their own (an actor-critic's critic and actor):
    `grad_fn` returns each part's gradient of its own loss, and as long as it computes them
    without `stop_gradient`, differentiating the result is still exact second order.

    Args:
      params: the starting parameters θ.
      grad_fn: `grad_fn(params, data, step) -> grads` like `params`; `step` is the `[]` int32
        index of the inner step, 0 .. steps - 1 (e.g. for delayed updates or per-step noise).
      data: the fixed data every step uses.
      steps: K, a Python int (0 returns `params`).
      lr: α, a scalar, or a pytree like `params` of per-parameter rates.
      first_order: stop gradients through the inner gradients.
      remat: recompute each step in the backward pass (`jax.checkpoint`).
      path: return the parameters after every step, stacked `[steps, ...]`.

    Returns:
      The adapted parameters, same structure as `params` (with a leading `[steps]` if `path`).
    """
    per_leaf_lr = jax.tree.structure(lr) == jax.tree.structure(params)

    def step(p, index):
        grads = grad_fn(p, data, index)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        if per_leaf_lr:
            p = jax.tree.map(lambda x, g, a: x - a * g, p, grads, lr)
        else:
            p = jax.tree.map(lambda x, g: x - lr * g, p, grads)
        return p, p if path else None

    if remat:
        step = jax.checkpoint(step)
    adapted, trajectory = jax.lax.scan(step, params, jnp.arange(steps, dtype=jnp.int32))
    return trajectory if path else adapted
