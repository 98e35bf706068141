"""Data carried between the parts of metaq_jax, and the callable types that join them.

Shape letters used throughout the docstrings:
  T  tasks in a meta-batch          M  environments per task
  L  rollout length (env steps)     A  number of discrete actions
  K  inner (adaptation) steps       ...obs  the observation shape
"""

from typing import Any, Callable, NamedTuple

import chex

Params = Any  # a pytree of arrays, e.g. flax variables {"params": ...}
EnvParams = Any  # a gymnax EnvParams dataclass: one task (or a batch of tasks with a leading axis)
Data = Any  # whatever a LossFn consumes

LossFn = Callable[[Params, Data], chex.Array]
"""`loss_fn(params, data) -> scalar`, differentiable in `params`."""

ApplyFn = Callable[[Params, chex.Array], chex.Array]
"""`apply_fn(params, obs[..., *obs]) -> q_values[..., A]`."""


class Transition(NamedTuple):
    """Transitions, with any leading batch shape (e.g. `[L, M]` from a rollout).

    `next_obs` is the observation reached by the step *before* any auto-reset, the one to
    bootstrap from. The bootstrap is cut on `terminated` only; `truncated` marks a time limit.
    """

    obs: chex.Array  # [..., *obs]
    action: chex.Array  # [...] int32
    reward: chex.Array  # [...] float32
    next_obs: chex.Array  # [..., *obs]
    terminated: chex.Array  # [...] bool
    truncated: chex.Array  # [...] bool


class MetaState(NamedTuple):
    """Everything a meta-learner carries from one `update` to the next."""

    params: Params  # meta-parameters θ
    target_params: Params  # target network used by every TD loss of the step
    opt_state: Any  # the outer optax optimiser's state
    step: chex.Array  # int32 scalar: meta-updates done so far


class Metrics(NamedTuple):
    """Scalars reported by one meta-update, averaged over the task batch."""

    meta_loss: chex.Array  # TD loss of the adapted parameters on query data
    support_loss: chex.Array  # TD loss of θ on support data, before adaptation
    pre_return: chex.Array  # mean episode return of θ's ε-greedy policy (support rollout)
    post_return: chex.Array  # mean episode return after adaptation (query rollout)
    grad_norm: chex.Array  # global norm of the meta-gradient given to the optimiser


InitFn = Callable[[chex.PRNGKey], MetaState]
UpdateFn = Callable[[MetaState, chex.PRNGKey], tuple[MetaState, Metrics]]
AdaptFn = Callable[..., Params]
"""`adapt(params, task_params, key) -> adapted params` for one task."""
EvaluateFn = Callable[..., chex.Array]
"""`evaluate(params, task_params, key) -> returns[K + 1]` after 0..K inner steps, one task."""
