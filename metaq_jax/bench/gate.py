"""The correctness gate: metaq_jax and the PyTorch reference agree on the meta-gradient.

From identical weights and identical data (support and query transitions collected once by
metaq_jax's collector and converted to torch), both frameworks compute each algorithm's
direction; the suite refuses to time anything unless they agree.
"""

import jax
import numpy as np

from metaq_jax.algos import make_problem, maml_loss
from metaq_jax.config import MetaConfig
from metaq_jax.types import Params, Transition

ALGOS = ("maml", "fomaml", "reptile")
"""The algorithms the gate checks (and the suite times)."""
RTOL = 1e-4
"""The largest relative error the gate accepts."""


class GateError(AssertionError):
    """metaq_jax and the PyTorch reference disagree: no timing may be trusted."""


def jax_direction(config: MetaConfig, params: Params, target: Params, support: Transition,
                  query: Transition) -> Params:
    """metaq_jax's meta-gradient (maml, fomaml) or Reptile direction θ − φ on fixed data.

    Args:
      config: the workload; `config.algo` picks the direction.
      params: θ, flax network variables.
      target: the target network's variables.
      support: `[L, M]` support transitions.
      query: `[L, M]` query transitions (unused by Reptile).

    Returns:
      The direction, structured like `params`.
    """
    problem = make_problem(config)
    if config.algo == "reptile":
        adapted = problem.inner(params, target, support, first_order=True)
        return jax.tree.map(lambda p, a: p - a, params, adapted)
    return jax.grad(maml_loss, argnums=1)(problem, params, target, support, query,
                                          first_order=config.algo == "fomaml")


def torch_direction(config: MetaConfig, params: Params, target: Params, support: Transition,
                    query: Transition) -> dict:
    """The PyTorch reference's direction on the same data, as flax-shaped numpy arrays.

    Needs torch.

    Args:
      config: the workload; `config.algo` picks the direction.
      params: θ, flax `QNetwork` variables.
      target: the target network's flax variables.
      support: `[L, M]` support transitions (JAX arrays).
      query: `[L, M]` query transitions (JAX arrays).

    Returns:
      The direction as flax variables of numpy arrays, structured like `params`.
    """
    from metaq_jax.bench import torch_reference as ref

    theta = {k: v.requires_grad_(True) for k, v in ref.params_from_flax(params).items()}
    kernels = [v for k, v in theta.items() if k.endswith("weight")]
    net = ref.make_network(kernels[0].shape[1], config.hidden_sizes, kernels[-1].shape[0])
    query_t = ref.transitions_to_torch(query)
    grads = ref.task_direction(net, theta, ref.params_from_flax(target), ref.transitions_to_torch(support),
                               lambda adapted: query_t, algo=config.algo, steps=config.inner_steps,
                               lr=config.inner_lr, gamma=config.gamma)
    return ref.params_to_flax(dict(zip(theta, grads)))


def gate_data(config: MetaConfig, key: jax.Array) -> tuple[Params, Params, Transition, Transition]:
    """Weights θ, a different target θ̄, and one task's support and query data `[L, M]`.

    Args:
      config: the workload: family, network, rollout sizes and ε.
      key: consumed; draws the weights, the task and both rollouts.

    Returns:
      `(params, target, support, query)`; both rollouts are collected with θ.
    """
    problem = make_problem(config)
    k_init, k_target, k_task, k_support, k_query = jax.random.split(key, 5)
    params, target = problem.init_params(k_init), problem.init_params(k_target)
    task = problem.family.sample_params(k_task)
    support = problem.collect(params, task, k_support, config.support_epsilon)
    query = problem.collect(params, task, k_query, config.epsilon)
    return params, target, support, query


def relative_error(got: Params, want: Params) -> float:
    """`max |got − want| / max |want|` over every parameter.

    Args:
      got: a pytree of arrays.
      want: the reference, the same structure.

    Returns:
      The largest absolute difference over the largest reference magnitude.
    """
    diff = max(float(np.max(np.abs(np.asarray(g) - np.asarray(w))))
               for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    scale = max(float(np.max(np.abs(np.asarray(w)))) for w in jax.tree.leaves(want))
    return diff / scale


def check_gate(config: MetaConfig, seed: int = 0) -> dict[str, float]:
    """Each algorithm's max relative error between the frameworks; raises `GateError` above `RTOL`.

    `config` gives the family, sizes, K, α and γ; its `algo` is ignored (all three are checked).
    Needs torch.

    Args:
      config: the workload.
      seed: seeds `gate_data`.

    Returns:
      `algo -> relative error` for each of `ALGOS`.

    Raises:
      GateError: an algorithm's error is above `RTOL` (or not a number).
    """
    data = gate_data(config, jax.random.key(seed))
    errors = {}
    for algo in ALGOS:
        algo_config = config.replace(algo=algo)
        errors[algo] = relative_error(torch_direction(algo_config, *data), jax_direction(algo_config, *data))
    failed = {a: e for a, e in errors.items() if not e <= RTOL}
    if failed:
        raise GateError(f"meta-gradients differ between metaq_jax and PyTorch beyond rtol {RTOL}: {failed}")
    return errors
