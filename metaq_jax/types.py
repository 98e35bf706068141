"""Data carried between the parts of metaq_jax, and the callable types that join them.

Shape letters used throughout the docstrings:
  T  tasks in a meta-batch          M  environments per task
  L  rollout length (env steps)     A  number of discrete actions
  K  inner (adaptation) steps       ...obs  the observation shape
  E  episodes of a trial            F  features of a memory learner's input
"""

from typing import Any, Callable, NamedTuple

import chex

Params = Any  # a pytree of arrays, e.g. flax variables {"params": ...}
EnvParams = Any  # a gymnax EnvParams dataclass: one task (or a batch of tasks with a leading axis)
Data = Any  # whatever a LossFn consumes

LossFn = Callable[[Params, Data], chex.Array]
"""`loss_fn(params, data) -> scalar`, differentiable in `params`."""

GradFn = Callable[[Params, Data, chex.Array], Params]
"""`grad_fn(params, data, step) -> grads` like `params`: an inner step's direction (`inner.adapt_by_grads`)."""

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
    """Everything a meta-learner carries from one `update` to the next, of every kind."""

    params: Params  # meta-parameters θ
    target_params: Params  # target network used by every TD loss of the step
    opt_state: Any  # the outer optax optimiser's state
    step: chex.Array  # int32 scalar: meta-updates done so far
    learner_state: Any = ()  # the learner's own state, e.g. rl2's carry at a trial's start, pearl's replay


class Metrics(NamedTuple):
    """Scalars reported by one meta-update, averaged over the task batch.

    "Before" and "after adaptation" as each kind adapts: a gradient learner before and after its
    inner steps (support and query rollouts); a memory learner in the first and the last episode
    of its training trial.
    """

    meta_loss: chex.Array  # the loss differentiated: TD loss after adaptation (query), or of the whole trial
    support_loss: chex.Array  # TD loss before adaptation: θ on support data, or the trial's first episode
    pre_return: chex.Array  # mean episode return before adaptation
    post_return: chex.Array  # mean episode return after adaptation
    grad_norm: chex.Array  # global norm of the meta-gradient given to the optimiser


InitFn = Callable[[chex.PRNGKey], MetaState]
UpdateFn = Callable[[MetaState, chex.PRNGKey], tuple[MetaState, Metrics]]
AdaptFn = Callable[..., Params]
"""`adapt(params, task_params, key) -> adapted params` for one task."""
EvaluateFn = Callable[..., chex.Array]
"""`evaluate(params, task_params, key) -> returns[K + 1]` after 0..K inner steps, one task."""
TrialFn = Callable[..., chex.Array]
"""`trial(state, task_params, key, num_episodes) -> returns[E]`: one trial on one task."""
SupportFn = Callable[[MetaState, EnvParams, chex.PRNGKey], chex.Array]
"""`support(state, task_params, key) -> returns[2]`: a fresh episode before and after adapting on a support batch."""
