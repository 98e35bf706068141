"""The gradient meta-learners on continuous actions: MAML, first-order MAML, Reptile and pretraining over TD3.

A continuous-action family's Q-learner is TD3 (`metaq_jax.td3`); the inner loop adapts the
critics and the actor together, each along its own loss (`td3.td3_grads`), and the meta-objective
is TD3's losses (critics' TD loss plus the actor's −Q₁) on query data collected by the adapted
actor, differentiated exactly (second order) through both parts. Chosen by the family's action
space, not by an algo name: `make_meta_learner` builds this learner for `maml`, `fomaml`,
`reptile` and `pretrain` on a family with continuous actions.
"""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import optax

from metaq_jax import inner, rollout
from metaq_jax import td3 as T
from metaq_jax.algos.base import MetaLearner, TaskStats, initial_meta_state, meta_update
from metaq_jax.config import MetaConfig
from metaq_jax.networks import ACTIVATIONS
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import EnvParams, MetaState, Params, Transition

@dataclasses.dataclass(frozen=True, eq=False)
class ActorCriticProblem:
    """The static pieces of meta-TD3 on a family: the networks, data collection, the losses."""

    config: MetaConfig
    family: TaskFamily
    td3: T.TD3
    actor: T.Actor
    critic: T.TwinCritic

    @property
    def action_size(self) -> int:
        """A, the family's action dimensions.

        Returns:
          A, the length of the action space's shape.
        """
        return self.family.env.action_space(self.family.default_params).shape[0]

    def init_params(self, key: chex.PRNGKey) -> Params:
        """`{"actor": φ, "critic": θ}` for the family's observations.

        Args:
          key: consumed; one half resets the environment for an example observation.

        Returns:
          The meta-parameters.
        """
        k_obs, k_net = jax.random.split(key)
        obs, _ = self.family.env.reset(k_obs, self.family.default_params)
        return T.init_params(k_net, self.actor, self.critic, obs, self.action_size)

    def collect(self, params: Params, task_params: EnvParams, key: chex.PRNGKey, epsilon: float,
                length: int | None = None) -> Transition:
        """`[L, M]` transitions of one task: ε-uniform, else the actor's action with exploration noise.

        Args:
          params: the acting parameters (no gradient flows into the data).
          task_params: one task.
          key: consumed.
          epsilon: the probability of a uniform action (≥ 1: a random walk).
          length: L; None for `config.rollout_length`.

        Returns:
          `Transition` `[L, M]`, actions `[L, M, A]`.
        """
        noise = jnp.where(jnp.asarray(epsilon) > 0, rollout.EXPLORATION_NOISE, 0.0)  # ε = 0: the actor alone
        return rollout.collect_actions(self.family.env, self.actor.apply, params["actor"], task_params, key,
                                       num_envs=self.config.num_envs,
                                       length=self.config.rollout_length if length is None else length,
                                       epsilon=epsilon, noise=noise)

    def support(self, params: Params, task_params: EnvParams, key: chex.PRNGKey) -> Transition:
        """One task's support rollout, at `config.support_epsilon`.

        Args:
          params: the acting parameters.
          task_params: one task.
          key: consumed.

        Returns:
          `Transition` `[L, M]`, actions `[L, M, A]`.
        """
        return self.collect(params, task_params, key, self.config.support_epsilon)

    def episode_return(self, params: Params, task_params: EnvParams, key: chex.PRNGKey) -> chex.Array:
        """The return of one whole episode acting at `config.eval_epsilon`, mean over envs. `[]`.

        Args:
          params: the acting parameters.
          task_params: one task.
          key: consumed.

        Returns:
          `[]` the mean episode return.
        """
        data = self.collect(params, task_params, key, self.config.eval_epsilon, self.family.episode_length)
        return rollout.episode_returns(data, 1)[0]

    def loss(self, params: Params, target_params: Params, batch: Transition, key: chex.PRNGKey) -> chex.Array:
        """TD3's losses on `batch`: the critics' TD loss plus the actor's −Q₁. `[]`.

        Args:
          params: `{"actor", "critic"}`, differentiated.
          target_params: the target networks.
          batch: transitions `[...]`.
          key: consumed: the target's smoothing noise.

        Returns:
          The sum of both losses.
        """
        targets = T.critic_targets(self.td3, target_params, batch, key)
        return (T.critic_loss(self.td3, params["critic"], batch, targets)
                + T.actor_loss(self.td3, params["actor"], params["critic"], batch.obs))

    def inner(self, params: Params, target_params: Params, support: Transition, key: chex.PRNGKey, *,
              first_order: bool, steps: int | None = None, path: bool = False) -> Params:
        """K TD3 steps on one task's support data, each part along its own loss.

        Args:
          params: meta-parameters.
          target_params: the target networks of the critics' targets.
          support: `[L, M]` transitions.
          key: the inner steps' smoothing noise (`fold_in(key, step)`).
          first_order: stop gradients through the inner gradients.
          steps: K; None for `config.inner_steps`.
          path: the parameters after every step, `[K, ...]`.

        Returns:
          The adapted parameters (with a leading `[K]` if `path`).
        """
        steps = self.config.inner_steps if steps is None else steps
        return inner.adapt_by_grads(params, functools.partial(T.td3_grads, self.td3), (support, target_params, key),
                                    steps=steps, lr=self.config.inner_lr, first_order=first_order,
                                    remat=self.config.remat, path=path)

    def task_stats(self, params, target_params, support, query, meta_loss, key) -> TaskStats:
        """One task's scalars of a meta-step (see `base.MetaQProblem.task_stats`).

        Args:
          params (Params): meta-parameters, before adaptation.
          target_params (Params): the target networks.
          support (Transition): `[L, M]` the support rollout, of `params`.
          query (Transition): `[L, M]` the query rollout, of the adapted parameters.
          meta_loss (chex.Array): `[]` the meta-loss on the query data.
          key (chex.PRNGKey): consumed: the target's smoothing noise in the support loss.

        Returns:
          `TaskStats`: `meta_loss`, TD3's losses on `support`, and the episode returns of both rollouts.
        """
        return TaskStats(meta_loss=meta_loss, support_loss=self.loss(params, target_params, support, key),
                         pre_return=rollout.episode_return(support), post_return=rollout.episode_return(query))


def maml_task_grad(problem: ActorCriticProblem, params: Params, target_params: Params, task_params: EnvParams,
                   key: chex.PRNGKey, *, first_order: bool) -> tuple[Params, TaskStats]:
    """One task's meta-gradient ∇ L_query(adapt(θ, support)) through K TD3 steps.

    Args:
      problem: the meta-TD3 problem.
      params: meta-parameters.
      target_params: the target networks of every loss.
      task_params: one task.
      key: consumed: support and query rollouts, inner and outer smoothing noise.
      first_order: stop gradients through the inner gradients.

    Returns:
      `(meta-gradient like params, the task's TaskStats)`.
    """
    k_support, k_query, k_inner, k_loss = jax.random.split(key, 4)
    support = problem.support(params, task_params, k_support)

    def objective(theta):
        adapted = problem.inner(theta, target_params, support, k_inner, first_order=first_order)
        query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
        return problem.loss(adapted, target_params, query, k_loss), query

    (loss, query), grad = jax.value_and_grad(objective, has_aux=True)(params)
    return grad, problem.task_stats(params, target_params, support, query, loss, k_loss)


def reptile_task_grad(problem: ActorCriticProblem, params: Params, target_params: Params, task_params: EnvParams,
                      key: chex.PRNGKey) -> tuple[Params, TaskStats]:
    """One task's Reptile direction θ − φ, φ = K TD3 steps on its support data (actor and critics).

    Handed to the outer optimiser as a gradient: with SGD at rate β, θ ← θ + β(φ − θ). The query
    rollout with φ only measures the adapted policy.

    Args:
      problem: the meta-TD3 problem.
      params: meta-parameters θ.
      target_params: the target networks of the inner losses.
      task_params: one task.
      key: consumed: support and query rollouts, inner and measuring smoothing noise.

    Returns:
      `(θ − φ like params, the task's TaskStats)`.
    """
    k_support, k_query, k_inner, k_loss = jax.random.split(key, 4)
    support = problem.support(params, task_params, k_support)
    adapted = problem.inner(params, target_params, support, k_inner, first_order=True)
    query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
    grad = jax.tree.map(lambda p, a: p - a, params, adapted)
    return grad, problem.task_stats(params, target_params, support, query,
                                    problem.loss(adapted, target_params, query, k_loss), k_loss)


def pretrain_task_grad(problem: ActorCriticProblem, params: Params, target_params: Params,
                       task_params: EnvParams, key: chex.PRNGKey) -> tuple[Params, TaskStats]:
    """One task's ∇ of TD3's losses at θ on its support data (multi-task TD3, no adaptation).

    It collects what the meta-learners collect, so a pretrained network has seen as many
    environment steps; the query rollout only measures fine-tuning.

    Args:
      problem: the meta-TD3 problem.
      params: the parameters.
      target_params: the target networks.
      task_params: one task.
      key: consumed.

    Returns:
      `(gradient like params, the task's TaskStats)`.
    """
    k_support, k_query, k_inner, k_loss = jax.random.split(key, 4)
    support = problem.support(params, task_params, k_support)
    grad = T.td3_grads(problem.td3, params, (support, target_params, k_loss), problem.td3.policy_delay - 1)
    adapted = problem.inner(params, target_params, support, k_inner, first_order=True)
    query = problem.collect(adapted, task_params, k_query, problem.config.epsilon)
    return grad, problem.task_stats(params, target_params, support, query,
                                    problem.loss(adapted, target_params, query, k_loss), k_loss)


TASK_GRADS = {"maml": functools.partial(maml_task_grad, first_order=False),
              "fomaml": functools.partial(maml_task_grad, first_order=True),
              "reptile": reptile_task_grad,
              "pretrain": pretrain_task_grad}


def actor_critic_trial(problem: ActorCriticProblem, params: Params, task_params: EnvParams, key: chex.PRNGKey,
                       num_episodes: int) -> chex.Array:
    """A trial of E episodes on one task: after each, K first-order TD3 steps from θ on the trial so far.

    Each of the `num_envs` environments is one agent adapting on its own episodes, as in the
    discrete gradient learners' trial.

    Args:
      problem: the meta-TD3 problem.
      params: meta-parameters θ (also the target networks of the inner losses).
      task_params: one task.
      key: consumed.
      num_episodes: E.

    Returns:
      `[E]` the mean return of episode 1..E over the environments.
    """
    config, length = problem.config, problem.family.episode_length
    one_env = dataclasses.replace(problem, config=config.replace(num_envs=1))
    keys = jax.random.split(key, (num_episodes, config.num_envs))
    agents = jax.tree.map(lambda x: jnp.broadcast_to(x, (config.num_envs, *x.shape)), params)
    seen, returns = None, []
    for episode in range(num_episodes):  # E is small and static: each episode's buffer has its own shape
        data = jax.vmap(lambda p, k: one_env.collect(p, task_params, k, config.eval_epsilon, length))(
            agents, keys[episode])  # [M, H, 1]
        returns.append(jnp.mean(rollout.episode_returns(jax.tree.map(lambda x: x[:, :, 0].swapaxes(0, 1), data), 1)))
        seen = data if seen is None else jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=1), seen, data)
        agents = jax.vmap(lambda d, k: one_env.inner(params, params, d, k, first_order=True))(
            seen, jax.random.split(keys[episode, 0], config.num_envs))
    return jnp.stack(returns)


def make_actor_critic_learner(config: MetaConfig, family: TaskFamily,
                              optimizer: optax.GradientTransformation) -> MetaLearner:
    """The gradient learner `config.algo` (one of `TASK_GRADS`) over TD3 on a continuous-action family.

    Args:
      config: its `hidden_sizes` and `activation` shape the actor and both critics; `gamma`
        discounts; TD3's other constants are the paper's.
      family: a family with continuous actions.
      optimizer: the outer optimiser of the whole meta-parameters.

    Returns:
      A `MetaLearner` of kind `"gradient"`, with `adapt`, `evaluate` and `trial`.
    """
    activation = ACTIVATIONS[config.activation]
    size = family.env.action_space(family.default_params).shape[0]
    actor, critic = T.Actor(size, config.hidden_sizes, activation), T.TwinCritic(config.hidden_sizes, activation)
    problem = ActorCriticProblem(config, family, T.TD3(actor.apply, critic.apply, gamma=config.gamma), actor, critic)
    task_grad = TASK_GRADS[config.algo]

    def init(key: chex.PRNGKey) -> MetaState:
        return initial_meta_state(problem.init_params(key), optimizer)

    update = meta_update(config, family, optimizer,
                         lambda params, target, _, task, key: task_grad(problem, params, target, task, key))

    def adapt(params: Params, task_params: EnvParams, key: chex.PRNGKey, target_params: Params | None = None) -> Params:
        k_support, k_inner = jax.random.split(key)
        target = params if target_params is None else target_params
        support = problem.support(params, task_params, k_support)
        return problem.inner(params, target, support, k_inner, first_order=True)

    def evaluate(params: Params, task_params: EnvParams, key: chex.PRNGKey, num_steps: int | None = None,
                 target_params: Params | None = None) -> chex.Array:
        num_steps = config.inner_steps if num_steps is None else num_steps
        target = params if target_params is None else target_params
        k_support, k_inner, k_eval = jax.random.split(key, 3)
        support = problem.support(params, task_params, k_support)
        ret = lambda p: problem.episode_return(p, task_params, k_eval)  # noqa: E731  the same key at every count
        if num_steps == 0:
            return ret(params)[None]
        path = problem.inner(params, target, support, k_inner, first_order=True, steps=num_steps, path=True)
        return jnp.concatenate([ret(params)[None], jax.lax.map(ret, path)])

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        return actor_critic_trial(problem, state.params, task_params, key, num_episodes)

    env_steps = 2 * config.num_tasks * config.num_envs * config.rollout_length
    return MetaLearner(kind="gradient", init=init, update=update, trial=trial, env_steps_per_update=env_steps,
                       adapt=adapt, evaluate=evaluate)
