"""Meta-learners: `make_meta_learner(config, family)` picks one by `config.algo`."""

import functools

import flax.linen as nn
import optax

from metaq_jax.errors import InputError
from metaq_jax.algos.base import (MetaLearner, MetaQProblem, TaskStats, build_learner, make_optimizer,
                                  with_meta_sgd)
from metaq_jax.algos.actor_critic import make_actor_critic_learner
from metaq_jax.algos.maml import maml_loss, maml_task_grad
from metaq_jax.algos.pretrain import pretrain_task_grad
from metaq_jax.algos.reptile import reptile_task_grad
from metaq_jax.config import MetaConfig
from metaq_jax.algos.mql import make_mql_learner
from metaq_jax.algos.pearl import make_pearl_learner
from metaq_jax.algos.recurrent_td3 import make_recurrent_td3_learner
from metaq_jax.algos.rl2 import make_rl2_learner
from metaq_jax.networks import (ACTIVATIONS, AttentionQNetwork, ContextQNetwork, LatentQNetwork, RecurrentQNetwork,
                                TabularQ, make_q_network)
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.registry import make_family

STATEFUL_LEARNERS = {"rl2": make_rl2_learner, "pearl": make_pearl_learner, "mql": make_mql_learner}
"""The memory and latent learners: `algo -> make(config, family, network, optimizer)`."""
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
      InputError: `family.name` is not `config.family`, its actions are continuous (the problem is
        a discrete-action Q-learner's; `make_meta_learner` builds TD3's), or the config's network
        does not fit the family (`default_network`).
    """
    family = _checked_family(config, family)
    if family.continuous_actions:
        raise InputError(f"family {family.name} has continuous actions: make_problem builds a discrete-action "
                         "Q-learner; make_meta_learner builds the TD3 learners")
    if network is None:
        network = default_network(config, family)
    return MetaQProblem(config=config, family=family, network=network)


def _checked_family(config: MetaConfig, family: TaskFamily | None) -> TaskFamily:
    """`family`, or `make_family(config.family)` when None; refused when its name is not
    `config.family`, or its actions are continuous and the config asks what TD3's learners lack."""
    if family is None:
        family = make_family(config.family)
    if family.name != config.family:
        raise InputError(f"family {family.name!r} given for MetaConfig.family = {config.family!r}: they must "
                         f"agree (the run records config.family); give config.replace(family={family.name!r})")
    if family.continuous_actions:
        _check_continuous(config, family)
    return family


def _check_continuous(config: MetaConfig, family: TaskFamily) -> None:
    """Refuse what the continuous-action (TD3) learners do not have, naming it."""
    for name, used in (("meta_sgd", config.meta_sgd), ("step_losses", config.step_losses),
                       ("adapt", config.adapt != "all"), ("network", config.network != "mlp")):
        if used:
            raise InputError(f"MetaConfig.{name} = {getattr(config, name)!r}: not available on family "
                             f"{config.family}'s continuous actions (the TD3 learners have MLP or recurrent networks "
                             "that adapt whole)")


def default_network(config: MetaConfig, family: TaskFamily) -> nn.Module:
    """The Q-network `config.network` names for `config.algo`'s kind, shaped for `family`.

    Args:
      config: its `network`, `hidden_sizes` and `activation`, and for rl2 `cell`, `cell_size`,
        `attention_filters`, `attention_size` and `trial_episodes`, are used.
      family: gives A, and S or the observation's rank.

    Returns:
      Gradient kind: `TabularQ(S, A)` for `"tabular"`, else an MLP `obs[..., *obs] -> q[..., A]`.
      Memory kind: `AttentionQNetwork` over a trial of `trial_episodes` episodes for
      `"attention"`, else a `RecurrentQNetwork` (MLP torso of `hidden_sizes`, then the cell).
      Latent kind: pearl's `LatentQNetwork` `(obs, z) -> q` of `hidden_sizes`; mql's
      `ContextQNetwork` `window -> q`, its GRU `latent_size` wide.

    Raises:
      InputError: `"tabular"` for a family with no tabular form (`num_states` None).
    """
    obs_ndim = len(family.env.observation_space(family.default_params).shape)
    if config.algo == "mql":
        return ContextQNetwork(family.num_actions, config.latent_size, config.hidden_sizes, ACTIVATIONS[config.activation])
    if config.kind == "latent":
        return LatentQNetwork(family.num_actions, config.hidden_sizes, ACTIVATIONS[config.activation], obs_ndim)
    if config.kind == "memory":
        activation = ACTIVATIONS[config.activation]
        if config.network == "attention":
            return AttentionQNetwork(family.num_actions, max_length=config.trial_episodes * family.episode_length,
                                     filters=config.attention_filters, key_size=config.attention_size,
                                     value_size=config.attention_size, torso_sizes=config.hidden_sizes,
                                     activation=activation)
        return RecurrentQNetwork(family.num_actions, hidden_size=config.cell_size, cell=config.cell,
                                 torso_sizes=config.hidden_sizes, activation=activation)
    if config.network == "tabular":
        if family.num_states is None:
            raise InputError(f"MetaConfig.network = 'tabular': family {family.name} has no tabular form; "
                             "use it with a tabular family (bandit, bandit-*, tabular-mdp, gridworld)")
        return TabularQ(family.num_states, family.num_actions)
    return make_q_network(family.num_actions, config.hidden_sizes, config.activation, obs_ndim)


def make_meta_learner(config: MetaConfig, family: TaskFamily | None = None, *,
                      network: nn.Module | None = None,
                      optimizer: optax.GradientTransformation | None = None) -> MetaLearner:
    """The meta-learner `config.algo` on `family`, of whichever kind the algo is.

    Args:
      config: the settings.
      family: a `TaskFamily`; default `make_family(config.family)`.
      network: any flax module of the kind's shape; default `config.network`. Gradient kind:
        `obs[..., *obs] -> q[..., A]`. Memory kind: a recurrent step `(carry, inputs[..., F]) ->
        (carry, q[..., A])` with `initial_carry(batch_shape)`, or a causal sequence network
        `inputs[L, ..., F] -> q[L, ..., A]` with a step cache (`initial_cache(F, batch_shape)`, as
        `AttentionQNetwork`; inputs as `networks.rl2_inputs` builds them). pearl:
        `(obs[..., *obs], z[..., Z]) -> q[..., A]`; mql: `window[..., H, F] -> q[..., A]` with a
        `context` method.
      optimizer: any optax transformation for the outer step of the network; default from the
        config. With `config.meta_sgd` the learned rates get Adam at `config.meta_sgd_lr`.

    Returns:
      The `MetaLearner`.

    Raises:
      InputError: `family` does not match `config.family`, `config.network` does not fit it, or
        its actions are continuous and `network` is given or the config asks what TD3's learners
        lack (Meta-SGD, step losses, ANIL, another network).
    """
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    family = _checked_family(config, family)
    if family.continuous_actions:
        if network is not None:
            raise InputError(f"network given for family {family.name}: its actions are continuous, and the TD3 "
                             "learners build their actor and critics from the config (hidden_sizes, activation)")
        if config.kind == "memory":
            return make_recurrent_td3_learner(config, family, optimizer)
        if config.kind == "latent":
            return STATEFUL_LEARNERS[config.algo](config, family, None, optimizer)
        return make_actor_critic_learner(config, family, optimizer)
    if config.kind in ("memory", "latent"):
        family = _checked_family(config, family)
        network = default_network(config, family) if network is None else network
        return STATEFUL_LEARNERS[config.algo](config, family, network, optimizer)
    problem = make_problem(config, family, network)
    return build_learner(problem, with_meta_sgd(config, optimizer), TASK_GRADS[config.algo])


__all__ = ["MetaLearner", "MetaQProblem", "TaskStats", "make_meta_learner", "make_optimizer",
           "make_mql_learner", "make_pearl_learner", "make_problem", "make_rl2_learner", "maml_loss", "maml_task_grad", "pretrain_task_grad", "reptile_task_grad"]
