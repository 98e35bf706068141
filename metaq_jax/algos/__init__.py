"""Meta-learners: `make_meta_learner(config, family)` picks one by `config.algo`."""

import functools

import flax.linen as nn
import optax

from metaq_jax.errors import InputError
from metaq_jax.algos.base import (MetaLearner, MetaQProblem, TaskStats, build_learner, make_optimizer,
                                  with_meta_sgd)
from metaq_jax.algos.maml import maml_loss, maml_task_grad
from metaq_jax.algos.pretrain import pretrain_task_grad
from metaq_jax.algos.reptile import reptile_task_grad
from metaq_jax.config import MetaConfig
from metaq_jax.networks import TabularQ, make_q_network
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.registry import make_family

TASK_GRADS = {
    "maml": functools.partial(maml_task_grad, first_order=False),
    "fomaml": functools.partial(maml_task_grad, first_order=True),
    "reptile": reptile_task_grad,
    "pretrain": pretrain_task_grad,
}


def make_problem(config: MetaConfig, family: TaskFamily | None = None,
                 network: nn.Module | None = None) -> MetaQProblem:
    """The static meta-Q problem: the family (default: `config.family`) and Q-network.

    Args:
      config: the settings.
      family: a `TaskFamily` named `config.family`; None builds `make_family(config.family)`.
      network: a flax module `obs[..., *obs] -> q[..., A]`; None for `default_network`.

    Returns:
      The `MetaQProblem`.

    Raises:
      InputError: `family.name` is not `config.family`, or the config's network does not fit
        the family (`default_network`).
    """
    if family is None:
        family = make_family(config.family)
    elif family.name != config.family:
        raise InputError(f"family {family.name!r} given for MetaConfig.family = {config.family!r}: they must "
                         f"agree (the run records config.family); give config.replace(family={family.name!r})")
    if network is None:
        network = default_network(config, family)
    return MetaQProblem(config=config, family=family, network=network)


def default_network(config: MetaConfig, family: TaskFamily) -> nn.Module:
    """The Q-network `config.network` names, shaped for `family`.

    Args:
      config: its `network`, and for an MLP `hidden_sizes` and `activation`, are used.
      family: gives A, and S or the observation's rank.

    Returns:
      `TabularQ(S, A)` for `"tabular"`, else an MLP `obs[..., *obs] -> q[..., A]`.

    Raises:
      InputError: `"tabular"` for a family with no tabular form (`num_states` None).
    """
    if config.network == "tabular":
        if family.num_states is None:
            raise InputError(f"MetaConfig.network = 'tabular': family {family.name} has no tabular form; "
                             "use it with a tabular family (bandit, bandit-*, tabular-mdp, gridworld)")
        return TabularQ(family.num_states, family.num_actions)
    obs_ndim = len(family.env.observation_space(family.default_params).shape)
    return make_q_network(family.num_actions, config.hidden_sizes, config.activation, obs_ndim)


def make_meta_learner(config: MetaConfig, family: TaskFamily | None = None, *,
                      network: nn.Module | None = None,
                      optimizer: optax.GradientTransformation | None = None) -> MetaLearner:
    """The meta-learner `config.algo` on `family`.

    Args:
      config: the settings.
      family: a `TaskFamily`; default `make_family(config.family)`.
      network: any flax module `obs[..., *obs] -> q[..., A]`; default `config.network`.
      optimizer: any optax transformation for the outer step of the network; default from the
        config. With `config.meta_sgd` the learned rates get Adam at `config.meta_sgd_lr`.

    Returns:
      `MetaLearner(init, update, adapt, evaluate)`.

    Raises:
      InputError: `family` does not match `config.family`, or `config.network` does not fit it.
    """
    problem = make_problem(config, family, network)
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    return build_learner(problem, with_meta_sgd(config, optimizer), TASK_GRADS[config.algo])


__all__ = ["MetaLearner", "MetaQProblem", "TaskStats", "make_meta_learner", "make_optimizer",
           "make_problem", "maml_loss", "maml_task_grad", "pretrain_task_grad", "reptile_task_grad"]
