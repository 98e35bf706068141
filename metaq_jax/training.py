"""A plain meta-training loop over the functional API; per-step keys derive from the step."""

from typing import Callable

import chex
import jax

from metaq_jax.algos import make_meta_learner
from metaq_jax.algos.base import MetaLearner
from metaq_jax.config import MetaConfig
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import MetaState, Metrics


def step_key(base_key: chex.PRNGKey, step: int | chex.Array) -> chex.PRNGKey:
    """The key of meta-step `step`: the same for a run resumed at any point.

    Args:
      base_key: the run key, not consumed.
      step: the meta-step's index, from 0.

    Returns:
      `fold_in(base_key, step)`.
    """
    return jax.random.fold_in(base_key, step)


def initial_state(learner: MetaLearner, seed: int) -> tuple[MetaState, chex.PRNGKey]:
    """The state before the first meta-step and the run key of every later step, from `seed`.

    Args:
      learner: its `init` builds the state.
      seed: the run's seed; `key(seed)` is split into the init key and the run key.

    Returns:
      `(state, run_key)`: `learner.init`'s `MetaState`, and the key `step_key` folds each step into.
    """
    init_key, run_key = jax.random.split(jax.random.key(seed))
    return learner.init(init_key), run_key


def train(config: MetaConfig, family: TaskFamily | None = None, *,
          learner: MetaLearner | None = None,
          callback: Callable[[int, Metrics], None] | None = None) -> tuple[MetaState, list[Metrics]]:
    """Meta-train for `config.meta_steps` updates from `config.seed`.

    Args:
      config: the settings.
      family: a `TaskFamily`; None builds `config.family` (ignored when `learner` is given).
      learner: the meta-learner to run; None for `make_meta_learner(config, family)`.
      callback: called as `callback(step, metrics)` after each step, with host-array `Metrics`.

    Returns:
      `(state, history)`: the final `MetaState` and the `Metrics` of every step, as host arrays.

    Raises:
      InputError: from `make_meta_learner`, when `family` does not fit `config`.
    """
    learner = make_meta_learner(config, family) if learner is None else learner
    state, run_key = initial_state(learner, config.seed)
    update = jax.jit(learner.update, donate_argnums=0)
    history = []
    for step in range(config.meta_steps):
        state, metrics = update(state, step_key(run_key, step))
        metrics = jax.device_get(metrics)
        history.append(metrics)
        if callback is not None:
            callback(step, metrics)
    return state, history
