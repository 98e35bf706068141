"""The correctness gate: metaq_jax and the PyTorch reference agree on the meta-gradient.

From identical weights and identical data (support and query transitions collected once by
metaq_jax's collector and converted to torch), both frameworks compute each algorithm's
direction; the suite refuses to time anything unless they agree. metaq_jax's side runs compiled,
the config static: op by op, `check_gate` took 12.8 s of a tiny plan, compiled 5.9 s.
"""

import functools

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


@functools.partial(jax.jit, static_argnums=0)
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


@functools.partial(jax.jit, static_argnums=0)
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


@functools.partial(jax.jit, static_argnums=(0, 2))
def tasks_data(config: MetaConfig, key: jax.Array, num_tasks: int) -> tuple[Params, Params, Transition, Transition]:
    """`gate_data` for T tasks sharing θ and θ̄: support and query `[T, L, M]`.

    Args:
      config: the workload.
      key: consumed.
      num_tasks: T.

    Returns:
      `(params, target, support, query)`.
    """
    problem = make_problem(config)
    k_weights, k_tasks = jax.random.split(key)
    params, target, _, _ = gate_data(config, k_weights)

    def one(k):
        k_task, k_support, k_query = jax.random.split(k, 3)
        task = problem.family.sample_params(k_task)
        return (problem.collect(params, task, k_support, config.support_epsilon),
                problem.collect(params, task, k_query, config.epsilon))

    support, query = jax.vmap(one)(jax.random.split(k_tasks, num_tasks))
    return params, target, support, query


@functools.partial(jax.jit, static_argnums=0)
def jax_mean_direction(config: MetaConfig, params: Params, target: Params, support: Transition,
                       query: Transition) -> Params:
    """`jax_direction` averaged over the T tasks of `[T, L, M]` data.

    Args:
      config: the workload; `config.algo` picks the direction.
      params: θ, flax network variables.
      target: the target network's variables.
      support: `[T, L, M]` support transitions.
      query: `[T, L, M]` query transitions.

    Returns:
      The mean direction, structured like `params`.
    """
    per_task = jax.vmap(lambda s, q: jax_direction(config, params, target, s, q))(support, query)
    return jax.tree.map(lambda d: d.mean(axis=0), per_task)


def peer_learning(config: MetaConfig, chunk: int, mode: str = "bmm"):
    """`torch_batched.Learning` of `config`'s algorithm and inner loop.

    Args:
      config: the workload.
      chunk: tasks per stacked computation.
      mode: one of `torch_batched.MODES`.

    Returns:
      The `Learning`.
    """
    from metaq_jax.bench import torch_batched

    return torch_batched.Learning(algo=config.algo, steps=config.inner_steps, lr=config.inner_lr, gamma=config.gamma,
                                  chunk=chunk, mode=mode)


def batched_direction(config: MetaConfig, params: Params, target: Params, support: Transition, query: Transition,
                      *, chunk: int, mode: str) -> dict:
    """The batched PyTorch peer's mean direction on `[T, L, M]` data, as flax-shaped numpy arrays. Needs torch.

    Args:
      config: the workload; `config.algo` picks the direction.
      params: θ, flax network variables.
      target: the target network's variables.
      support: `[T, L, M]` support transitions (JAX arrays).
      query: `[T, L, M]` query transitions (JAX arrays).
      chunk: tasks per stacked computation.
      mode: one of `torch_batched.MODES`.

    Returns:
      The direction as flax variables of numpy arrays, structured like `params`.
    """
    from metaq_jax.bench import torch_batched as tb

    theta = [p.requires_grad_(True) for p in tb.layers_from_flax(params)]
    query_t = tb.batch_from_transitions(query)
    direction = tb.meta_direction(peer_learning(config, chunk, mode), theta, tb.layers_from_flax(target),
                                  tb.batch_from_transitions(support), lambda adapted: query_t)
    return tb.layers_to_flax(direction)


def procs_direction(config: MetaConfig, params: Params, target: Params, support: Transition, query: Transition,
                    *, processes: int) -> dict:
    """The mean direction of `torch_procs` (T/P tasks per process, all-reduced) on `[T, L, M]` data.

    The processes start from θ and hold θ̄ as their target network. Needs torch.

    Args:
      config: the workload; `config.algo` picks the direction.
      params: θ, flax network variables.
      target: θ̄, the target network's variables.
      support: `[T, L, M]` support transitions (JAX arrays).
      query: `[T, L, M]` query transitions (JAX arrays).
      processes: P, which divides T.

    Returns:
      The direction as flax variables of numpy arrays, structured like `params`.
    """
    from metaq_jax.bench import torch_batched as tb

    peers = tb.ProcsMetaLearner(processes, variables=params, learning=peer_learning(config, chunk=1),
                                num_tasks=support.action.shape[0], num_envs=config.num_envs,
                                rollout_length=config.rollout_length, outer_lr=config.outer_lr, epsilon=config.epsilon,
                                support_epsilon=config.support_epsilon, target_update_period=config.target_update_period,
                                target=target, data=(tb.batch_from_transitions(support), tb.batch_from_transitions(query)))
    try:
        return tb.layers_to_flax(peers.learn())
    finally:
        peers.close()


def check_peers(config: MetaConfig, num_tasks: int = 2, seed: int = 0) -> dict[str, float]:
    """Every PyTorch peer's relative error against metaq_jax on T tasks' fixed data, for `config.algo`
    (the algorithm the suite times them on); raises `GateError` above `RTOL`.

    `torch_batched` in both modes, one task per chunk and all T in one; `torch_procs` over 2
    processes (T/2 tasks each). Needs torch.

    Args:
      config: the workload.
      num_tasks: T, even.
      seed: seeds `tasks_data`.

    Returns:
      `peer -> max relative error` over what it was checked on.

    Raises:
      GateError: a peer's error is above `RTOL` (or not a number).
    """
    from metaq_jax.bench import torch_batched

    data = tasks_data(config, jax.random.key(seed), num_tasks)
    want = jax_mean_direction(config, *data)
    found = {f"torch_batched_{mode}": [relative_error(batched_direction(config, *data, chunk=chunk, mode=mode), want)
                                       for chunk in (1, num_tasks)] for mode in torch_batched.MODES}
    found["torch_procs"] = [relative_error(procs_direction(config, *data, processes=2), want)]
    errors = {peer: float(np.max(e)) for peer, e in found.items()}  # NaN stays NaN
    failed = {p: e for p, e in errors.items() if not e <= RTOL}
    if failed:
        raise GateError(f"meta-gradients differ between metaq_jax and a PyTorch peer beyond rtol {RTOL}: {failed}")
    return errors
