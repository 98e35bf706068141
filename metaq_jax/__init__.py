"""metaq_jax: meta-reinforcement learning built on Q-learning, in JAX.

The public surface: task families, the differentiable inner loop, meta-learners as pure
`(init, update)` pairs, and the pieces they are made of.
"""

from metaq_jax import hosts as _hosts

_hosts.join_from_environment()  # multi-host: before any import below starts JAX's backend

from metaq_jax.algos import (MetaLearner, MetaQProblem, make_meta_learner, make_optimizer,
                             make_problem, maml_loss)
from metaq_jax.config import MetaConfig
from metaq_jax.evaluate import AdaptationCurve, adaptation_curve, meta_test
from metaq_jax.protocol import markdown_table, run_protocol
from metaq_jax.inner import adapt
from metaq_jax.losses import td_error, td_loss
from metaq_jax.networks import QNetwork, make_q_network
from metaq_jax.rollout import collect, episode_return, epsilon_greedy
from metaq_jax.tasks import (TaskFamily, cartpole_params, list_families, make_family,
                             register_family)
from metaq_jax.train import train
from metaq_jax.types import MetaState, Metrics, Transition

__all__ = [
    "AdaptationCurve", "MetaConfig", "MetaLearner", "MetaQProblem", "MetaState", "Metrics",
    "QNetwork", "TaskFamily", "Transition", "adapt", "adaptation_curve", "cartpole_params",
    "collect", "episode_return", "epsilon_greedy", "list_families", "make_family",
    "make_meta_learner", "make_optimizer", "make_problem", "make_q_network", "maml_loss", "markdown_table",
    "meta_test", "run_protocol",
    "register_family", "td_error", "td_loss", "train",
]
