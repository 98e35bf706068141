"""The differentiable inner loop: SGD adaptation of any parameters on any loss."""

import jax

from metaq_jax.types import Data, LossFn, Params


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
    per_leaf_lr = jax.tree.structure(lr) == jax.tree.structure(params)

    def step(p, _):
        grads = jax.grad(loss_fn)(p, data)
        if first_order:
            grads = jax.lax.stop_gradient(grads)
        if per_leaf_lr:
            p = jax.tree.map(lambda x, g, a: x - a * g, p, grads, lr)
        else:
            p = jax.tree.map(lambda x, g: x - lr * g, p, grads)
        return p, p if path else None

    if remat:
        step = jax.checkpoint(step)
    adapted, trajectory = jax.lax.scan(step, params, None, length=steps)
    return trajectory if path else adapted
