"""metaq_jax: meta-reinforcement learning built on Q-learning, in JAX.

The public surface: task families, the differentiable inner loop, meta-learners of every kind
(gradient, memory) as pure `(init, update)` pairs with a `trial`, and the pieces they are made of.

Importing does nothing but import: no JAX backend is started (gymnax and the family modules
are imported when a family is built), no multi-host run is joined (call
`metaq_jax.distributed.initialize()`), no global setting is changed.
"""

from metaq_jax import distributed, training
from metaq_jax.algos import (MetaLearner, MetaQProblem, make_meta_learner, make_optimizer,
                             make_problem, maml_loss)
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.evaluate import Curve, adaptation_curve, meta_test, trial_curve
from metaq_jax.inner import adapt, adapt_by_grads
from metaq_jax.losses import td_error, td_loss
from metaq_jax.networks import AttentionQNetwork, QNetwork, RecurrentQNetwork, make_q_network
from metaq_jax.protocol import markdown_table, run_protocol
from metaq_jax.rollout import collect, episode_return, episode_returns, epsilon_greedy
from metaq_jax.tasks import TaskFamily, list_families, make_family, register_family
from metaq_jax.training import train
from metaq_jax.types import MetaState, Metrics, Transition


def __getattr__(name: str):
    if name == "cartpole_params":  # from a family module, which imports gymnax
        from metaq_jax.tasks import cartpole_params

        return cartpole_params
    raise AttributeError(f"module 'metaq_jax' has no attribute {name!r}")


__all__ = [
    "AttentionQNetwork", "Curve", "InputError", "MetaConfig", "MetaLearner", "MetaQProblem", "MetaState",
    "Metrics", "QNetwork", "RecurrentQNetwork", "TaskFamily", "Transition", "adapt", "adapt_by_grads", "adaptation_curve",
    "cartpole_params", "collect", "distributed", "episode_return", "episode_returns", "epsilon_greedy",
    "list_families", "make_family", "make_meta_learner", "make_optimizer", "make_problem", "make_q_network",
    "maml_loss", "markdown_table", "meta_test", "register_family", "run_protocol", "td_error", "td_loss",
    "train", "training", "trial_curve",
]
