"""PEARL (Rakelly et al. 2019) as a Q-learner: a Q-function conditioned on a latent task variable
inferred from context, trained off-policy from each training task's replay.

The latent kind of meta-learner: it adapts to a task by inferring z from transitions of it. An
encoder maps each context transition to a Gaussian factor, the posterior q(z | c) is their
product (`metaq_jax.latent`), and the Q-network reads Q(s, ·, z).

Meta-training draws `task_pool` training tasks once (PEARL's training tasks), each with its own
flashbax replay and its recent context (the transitions of its last collection, PEARL's encoder
buffer). A meta-step collects one episode in `num_envs` environments on each of `num_tasks`
tasks of the pool, half the environments acting with z from the prior and half with z from the
posterior of the task's recent context, ε-greedy at `epsilon`; then takes `gradient_steps` steps,
each on `num_tasks` tasks of the pool: z is drawn from the posterior of `context_size`
transitions of the task's recent context, the loss is the double-DQN TD loss of `batch_size`
transitions of its replay with z held fixed in the target, plus `kl_weight` · KL(q(z | c) ‖ N(0, I));
the encoder gets gradients from that TD loss and the KL alone. The target network is refreshed
every `target_update_period` meta-steps.

Meta-test (the trial): z from the prior in the first episode, then, at each episode's start, a
fresh draw from the posterior of everything the environment saw so far on the task (posterior
sampling); each of the trial's environments is one agent with its own context.
"""

from typing import Callable, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from metaq_jax import latent, losses, rollout
from metaq_jax import td3 as T
from metaq_jax.algos import offpolicy
from metaq_jax.algos.base import MetaLearner, initial_meta_state
from metaq_jax.algos.rl2 import first_episode
from metaq_jax.config import MetaConfig
from metaq_jax.networks import ACTIVATIONS
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import EnvParams, MetaState, Params, Transition


def latent_td_loss(q_apply: Callable, q_params: Params, q_target: Params, z: chex.Array, batch: Transition,
                   gamma: chex.Numeric) -> chex.Array:
    """The double-DQN TD loss of Q(·, ·, z) on `batch`, z held fixed in the target. `[]`.

    Args:
      q_apply: `(params, obs[..., *obs], z[Z]) -> q[..., A]`.
      q_params: online Q parameters, differentiated.
      q_target: target Q parameters.
      z: `[Z]` the task variable; gradients flow into it through the online values only.
      batch: transitions of any leading shape.
      gamma: discount.

    Returns:
      `[]` the mean of `0.5 * error²` (`losses.td_loss` with `double_q`).
    """
    fixed = jax.lax.stop_gradient(z)
    q_t = q_apply(q_target, batch.next_obs, fixed)
    return losses.td_loss(lambda p, obs: q_apply(p, obs, z), q_params, None, batch, gamma, q_t=q_t,
                          double_q=True)


class ConditionedLearner(NamedTuple):
    """The Q-learner PEARL conditions on z, for a family's kind of actions.

    Attributes:
      init: `(key, obs[*obs], z[Z]) -> params` of the conditioned networks (no encoder).
      collect: `(params, z[M, Z], task, key, epsilon) -> Transition [H, M]`: one episode's steps in
        M environments, each acting on its own z.
      td_loss: `(params, target_params, z[Z], batch, key) -> []`: the TD loss the encoder learns
        from (with the KL), z held fixed in the target.
      own_grads: `(params, target_params, z[Z], batch, key) -> grads`: the parts that follow a loss
        of their own (TD3's actor), z given without gradient; `{}` for none.
      item: a replay item (no batch axis).
      num_actions: A for one-hot actions in the context; None for continuous ones, as they are.
    """

    init: Callable
    collect: Callable
    td_loss: Callable
    own_grads: Callable
    item: Transition
    num_actions: int | None


def dqn_learner(config: MetaConfig, family: TaskFamily, network: nn.Module) -> ConditionedLearner:
    """A double DQN Q(s, ·, z) of discrete actions, `network` `(obs, z) -> q[..., A]`; params `{"q"}`.

    Args:
      config: its `num_envs` and `gamma` are used.
      family: a family with discrete actions; its episode length is a collection's.
      network: `(obs[..., *obs], z[..., Z]) -> q[..., A]`.

    Returns:
      The `ConditionedLearner` (no parts of its own: `own_grads` is empty).
    """
    env = family.env

    def collect(params, z, task, key, epsilon):
        return rollout.collect(env, lambda acting, obs: network.apply(acting[0], obs, acting[1]), (params["q"], z),
                               task, key, num_envs=config.num_envs, length=family.episode_length, epsilon=epsilon)

    obs, _ = env.reset(jax.random.key(0), family.default_params)
    return ConditionedLearner(
        init=lambda key, obs, z: {"q": network.init(key, obs, z)},
        collect=collect,
        td_loss=lambda params, target, z, batch, key: latent_td_loss(network.apply, params["q"], target["q"], z,
                                                                     batch, config.gamma),
        own_grads=lambda *_: {},
        item=offpolicy.example_item(obs), num_actions=env.num_actions)


def td3_learner(config: MetaConfig, family: TaskFamily) -> ConditionedLearner:
    """TD3 of continuous actions conditioned on z: the actor π(s, z) and twin critics Q(s, a, z)
    read z beside the flat observation; params `{"actor", "critic"}`. The critics' TD loss trains the
    encoder (as in PEARL, where the critic's does); the actor follows −Q₁ with z and the critics fixed,
    at every gradient step (no delay: under a momentum optimiser a zero step still moves it).

    Args:
      config: its `hidden_sizes`, `activation`, `num_envs` and `gamma` are used.
      family: a family with continuous actions and flat observations.

    Returns:
      The `ConditionedLearner`: `own_grads` gives the actor's gradient; a replay item's action is `[A]`.
    """
    env, activation = family.env, ACTIVATIONS[config.activation]
    size = env.action_space(family.default_params).shape[0]
    actor, critic = T.Actor(size, config.hidden_sizes, activation), T.TwinCritic(config.hidden_sizes, activation)

    def with_z(obs, z):  # obs [..., O] (a locomotion family's are flat), z [Z] or [..., Z]
        return jnp.concatenate([obs, jnp.broadcast_to(z, obs.shape[:-1] + z.shape[-1:])], axis=-1)

    def td3_on(z):
        return T.TD3(lambda p, obs: actor.apply(p, with_z(obs, z)),
                     lambda p, obs, a: critic.apply(p, with_z(obs, z), a), gamma=config.gamma)

    def init(key, obs, z):
        k_actor, k_critic = jax.random.split(key)
        x = with_z(obs, z)
        return {"actor": actor.init(k_actor, x), "critic": critic.init(k_critic, x, jnp.zeros(size))}

    def collect(params, z, task, key, epsilon):
        noise = jnp.where(jnp.asarray(epsilon) > 0, rollout.EXPLORATION_NOISE, 0.0)  # ε = 0: the actor alone
        return rollout.collect_actions(env, td3_on(z).actor_fn, params["actor"], task, key, num_envs=config.num_envs,
                                       length=family.episode_length, epsilon=epsilon, noise=noise)

    def td_loss(params, target, z, batch, key):
        targets = T.critic_targets(td3_on(jax.lax.stop_gradient(z)), target, batch, key)
        return T.critic_loss(td3_on(z), params["critic"], batch, targets)

    def own_grads(params, target, z, batch, key):
        return {"actor": jax.grad(T.actor_loss, argnums=1)(td3_on(z), params["actor"], params["critic"], batch.obs)}

    obs, _ = env.reset(jax.random.key(0), family.default_params)
    item = offpolicy.example_item(obs)._replace(action=jnp.zeros(size, jnp.float32))
    return ConditionedLearner(init=init, collect=collect, td_loss=td_loss, own_grads=own_grads, item=item,
                              num_actions=None)


def make_pearl_learner(config: MetaConfig, family: TaskFamily, network: nn.Module | None,
                       optimizer: optax.GradientTransformation) -> MetaLearner:
    """The latent-kind `MetaLearner`: PEARL's encoder and a latent-conditioned double DQN, or TD3
    on a family with continuous actions.

    Args:
      config: the settings (an `algo="pearl"` config).
      family: the task family.
      network: a Q-network conditioned on z, `(obs[..., *obs], z[..., Z]) -> q[..., A]` (e.g.
        `LatentQNetwork`); None on a continuous-action family (TD3's actor and critics of
        `hidden_sizes`, z beside the observation).
      optimizer: the outer optimiser of all the parameters.

    Returns:
      The `MetaLearner` of kind `"latent"`. Its parameters are `{"q", "encoder"}` (TD3:
      `{"actor", "critic", "encoder"}`); its learner state `{"tasks": EnvParams[N], "replay":
      flashbax state [N], "context": Transition[N, C], "has_context": bool[N]}`: the pool of N =
      `task_pool` training tasks, each with its replay and its recent context of C = H × M
      transitions (H the episode length, M `num_envs`).
    """
    env, num_envs, horizon = family.env, config.num_envs, family.episode_length
    learner = td3_learner(config, family) if family.continuous_actions else dqn_learner(config, family, network)
    obs, _ = env.reset(jax.random.key(0), family.default_params)
    encoder = latent.ContextEncoder(config.latent_size, config.hidden_sizes)
    item = learner.item
    features = latent.context_features(item._replace(obs=obs.reshape(-1), next_obs=obs.reshape(-1)),
                                       learner.num_actions).shape[-1]
    context_length = horizon * num_envs
    replay = offpolicy.make_replay(config, family)

    def posterior(encoder_params, context: Transition, mask):  # context [C], mask [C] -> (μ [Z], σ² [Z])
        rows = context.reward.shape[0]
        flat_obs = context._replace(obs=context.obs.reshape(rows, -1), next_obs=context.next_obs.reshape(rows, -1))
        return latent.posterior(encoder, encoder_params, latent.context_features(flat_obs, learner.num_actions), mask)

    def recent_context(learner_state, index, key):
        """`context_size` transitions drawn from task `index`'s recent context, and their mask."""
        rows = jax.random.randint(key, (config.context_size,), 0, context_length)
        context = jax.tree.map(lambda x: x[index][rows], learner_state["context"])
        mask = jnp.broadcast_to(learner_state["has_context"][index], (config.context_size,))
        return context, mask

    def init(key: chex.PRNGKey) -> MetaState:
        k_tasks, k_q, k_enc = jax.random.split(key, 3)
        params = {**learner.init(k_q, obs, jnp.zeros(config.latent_size)),
                  "encoder": encoder.init(k_enc, jnp.zeros(features))}
        learner_state = {
            **offpolicy.init_pool(family, config, replay, k_tasks, item),
            "context": offpolicy.zeros(item, config.task_pool, context_length),
            "has_context": jnp.zeros(config.task_pool, bool),
        }
        return initial_meta_state(params, optimizer, learner_state)

    def collect_one(shared, xs):
        """One pool task's episode in M environments: prior z in half, posterior z in the other half."""
        params, learner_state, step = shared
        index, key = xs
        k_context, k_z, k_roll = jax.random.split(key, 3)
        mean, variance = posterior(params["encoder"], *recent_context(learner_state, index, k_context))
        from_posterior = (jnp.arange(num_envs) + step) % 2 == 1  # [M]; with one env, alternate by step
        mean = jnp.where(from_posterior[:, None], mean, 0.0)
        variance = jnp.where(from_posterior[:, None], variance, 1.0)
        z = latent.sample_latent(k_z, mean, variance)  # [M, Z]
        task = jax.tree.map(lambda x: x[index], learner_state["tasks"])
        data = learner.collect(params, z, task, k_roll, config.epsilon)
        first = first_episode(data)
        returns = jnp.sum(jnp.where(first, data.reward, 0.0), axis=0)  # [M] each environment's first episode
        posterior_share = jnp.mean(from_posterior)
        prior_return = jnp.sum(jnp.where(from_posterior, 0.0, returns)) / jnp.maximum(num_envs * (1 - posterior_share), 1)
        posterior_return = jnp.sum(jnp.where(from_posterior, returns, 0.0)) / jnp.maximum(num_envs * posterior_share, 1)
        return offpolicy.flat(data), (prior_return, posterior_return)

    def loss_one(shared, xs):
        """One pool task's gradient of the TD + KL loss, and its scalars."""
        params, target_params, learner_state = shared
        index, key = xs
        k_context, k_batch, k_z, k_prior = jax.random.split(key, 4)
        k_noise = k_batch  # TD3's smoothing noise (a DQN draws none)
        context, mask = recent_context(learner_state, index, k_context)
        own = offpolicy.task_replay(learner_state, index)
        batch = replay.sample(own, k_batch).experience
        weight = replay.can_sample(own).astype(jnp.float32)

        def loss(params):
            mean, variance = posterior(params["encoder"], context, mask)
            z = latent.sample_latent(k_z, mean, variance)
            td = learner.td_loss(params, target_params, z, batch, k_noise)
            return td + config.kl_weight * latent.kl_to_standard_normal(mean, variance), z

        (value, z), grad = jax.value_and_grad(loss, has_aux=True)(params)
        grad = {**grad, **learner.own_grads(params, target_params, z, batch, k_noise)}
        prior_z = jax.random.normal(k_prior, (config.latent_size,))
        prior_td = learner.td_loss(params, target_params, prior_z, batch, k_noise)
        return jax.tree.map(lambda g: weight * g, grad), (weight, value, prior_td)

    def record(learner_state, picked, data):  # each collected task's recent context is its new data
        return {**learner_state, "context": jax.tree.map(lambda all_, new: all_.at[picked].set(new),
                                                         learner_state["context"], data),
                "has_context": learner_state["has_context"].at[picked].set(True)}

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        context_rows = num_episodes * horizon

        def episode(carry, xs):
            context, mask = carry  # [E × H, M] each environment's transitions so far
            index, k_z, k_roll = xs
            mean, variance = jax.vmap(lambda c, m: posterior(state.params["encoder"], c, m), in_axes=1)(context, mask)
            z = latent.sample_latent(k_z, mean, variance)  # [M, Z]; the prior while the context is empty
            data = learner.collect(state.params, z, task_params, k_roll, config.eval_epsilon)
            first = first_episode(data)  # [H, M]: the episode itself; later steps are not the trial's
            context = jax.tree.map(lambda c, d: jax.lax.dynamic_update_slice_in_dim(c, d, index * horizon, axis=0),
                                   context, data)
            mask = jax.lax.dynamic_update_slice_in_dim(mask, first, index * horizon, axis=0)
            return (context, mask), rollout.episode_returns(data, 1)[0]

        k_z, k_roll = jax.random.split(key)
        _, returns = jax.lax.scan(episode, (offpolicy.zeros(item, context_rows, num_envs),
                                            jnp.zeros((context_rows, num_envs), bool)),
                                  (jnp.arange(num_episodes), jax.random.split(k_z, num_episodes),
                                   jax.random.split(k_roll, num_episodes)))
        return returns

    def support(state: MetaState, task_params: EnvParams, key: chex.PRNGKey) -> chex.Array:
        """A fresh episode on z from the prior, and on z from the posterior of a support batch: `[2]`."""
        k_prior, k_support, k_posterior, k_eval = jax.random.split(key, 4)
        shape = (num_envs, config.latent_size)
        prior = latent.sample_latent(k_prior, jnp.zeros(shape), jnp.ones(shape))
        data = learner.collect(state.params, prior, task_params, k_support, config.support_epsilon)  # [H, M]
        mean, variance = posterior(state.params["encoder"], offpolicy.flat(data), first_episode(data).reshape(-1))
        z = latent.sample_latent(k_posterior, jnp.broadcast_to(mean, shape), jnp.broadcast_to(variance, shape))
        return jnp.stack([rollout.episode_returns(learner.collect(state.params, zs, task_params, k_eval,
                                                                  config.eval_epsilon), 1)[0] for zs in (prior, z)])

    env_steps = config.num_tasks * num_envs * horizon
    update = offpolicy.offpolicy_update(config, optimizer, replay, collect_one, loss_one, record)
    return MetaLearner(kind="latent", init=init, update=update, trial=trial, env_steps_per_update=env_steps,
                       pooled=True, support=support)
