"""What every meta-learner shares — the `MetaLearner` interface and its outer update — and the
gradient kind's substrate, `MetaQProblem` (Q-network, collection, TD loss, inner SGD steps)."""

import dataclasses
from typing import Any, Callable, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from metaq_jax import distributed, inner, losses, networks, rollout
from metaq_jax.config import MetaConfig
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import (AdaptFn, EnvParams, EvaluateFn, InitFn, MetaState, Metrics,
                             Params, SupportFn, Transition, TrialFn, UpdateFn)


class MetaLearner(NamedTuple):
    """A meta-learner of any kind as pure functions, in the manner of an optax transformation.

    Every kind meta-trains with the same pair and meta-tests with the same trial: E episodes on
    one fixed task, during which the learner adapts as its kind does — a gradient learner by K
    inner SGD steps on the trial's data so far every `adapt_every` env steps, a memory learner by
    carrying its state across steps and episode ends, a latent learner by inferring its task
    variable from the trial so far at each episode's start. Each of the trial's `num_envs`
    environments is one agent: it adapts on its own data alone.

    Attributes:
      kind: `"gradient"`, `"memory"` or `"latent"`.
      init: `init(key) -> MetaState`.
      update: `update(state, key) -> (state, Metrics)`: one meta-step over `num_tasks` training
        tasks, vmapped with axis name `task` over devices and `task_batch` tasks at a time; jit-able.
      trial: `trial(state, task_params, key, num_episodes) -> returns[E]`, the return of each
        episode of one trial on one task, in `num_envs` environments (their mean).
      env_steps_per_update: environment steps one `update` collects.
      adapt: gradient kind: `adapt(params, task_params, key, target_params=None) -> params` for
        one task; None for other kinds.
      evaluate: gradient kind: `evaluate(params, task_params, key, num_steps=None,
        target_params=None) -> returns[num_steps + 1]`, the return of a whole fresh episode after
        0..num_steps inner steps on a support batch (MAML's protocol); None for other kinds.
      pooled: the learner state is a pool of training tasks, every leaf `[task_pool, ...]` (the
        off-policy learners' tasks and replays): a mesh splits it along `task`.
      support: latent kind: `support(state, task_params, key) -> returns[2]`, the return of a
        whole fresh episode before and after adapting once on a support batch (one episode in
        each of `num_envs` environments at `support_epsilon`): MAML's protocol for a learner
        whose adaptation takes no steps; None for other kinds.
    """

    kind: str
    init: InitFn
    update: UpdateFn
    trial: TrialFn
    env_steps_per_update: int
    adapt: AdaptFn | None = None
    evaluate: EvaluateFn | None = None
    pooled: bool = False
    support: SupportFn | None = None


class TaskStats(NamedTuple):
    """Per-task scalars of one meta-step (the `Metrics` fields but the gradient norm)."""

    meta_loss: chex.Array
    support_loss: chex.Array
    pre_return: chex.Array
    post_return: chex.Array


TaskGradFn = Callable[["MetaQProblem", Params, Params, EnvParams, chex.PRNGKey], tuple[Params, TaskStats]]
"""`task_grad(problem, params, target_params, task_params, key) -> (grad for θ, TaskStats)`."""
KindGradFn = Callable[[Params, Params, Any, EnvParams, chex.PRNGKey], tuple[Params, TaskStats]]
"""`task_grad(params, target_params, learner_state, task_params, key) -> (grad for θ, TaskStats)`."""


@dataclasses.dataclass(frozen=True, eq=False)
class MetaQProblem:
    """The static pieces of meta-Q-learning on a family: network, data collection, TD loss."""

    config: MetaConfig
    family: TaskFamily
    network: nn.Module

    def init_params(self, key: chex.PRNGKey) -> Params:
        """Network variables; with Meta-SGD `{"net": variables, "log_lr": log α like them}`.

        Args:
          key: consumed; one half resets the environment at the default task for an example
            observation, the other initialises the network.

        Returns:
          The meta-parameters θ; Meta-SGD's log-rates all start at `log(config.inner_lr)`.
        """
        k_obs, k_net = jax.random.split(key)
        obs, _ = self.family.env.reset(k_obs, self.family.default_params)
        net = self.network.init(k_net, obs)
        if not self.config.meta_sgd:
            return net
        log_lr = jax.tree.map(lambda x: jnp.full_like(x, jnp.log(self.config.inner_lr)), net)
        return {"net": net, "log_lr": log_lr}

    def net(self, params: Params) -> Params:
        """The network variables inside meta-parameters.

        Args:
          params: meta-parameters, as `init_params` makes them.

        Returns:
          `params["net"]` with Meta-SGD, else `params` itself.
        """
        return params["net"] if self.config.meta_sgd else params

    def with_net(self, params: Params, net: Params) -> Params:
        """`params` with its network variables replaced by `net` (Meta-SGD's rates kept).

        Args:
          params: meta-parameters.
          net: network variables with the structure of `net(params)`.

        Returns:
          Meta-parameters with the structure of `params`.
        """
        return {**params, "net": net} if self.config.meta_sgd else net

    def inner_lr(self, params: Params):
        """α: the config's scalar, or Meta-SGD's learned per-parameter rates.

        Args:
          params: meta-parameters.

        Returns:
          (float | Params): `config.inner_lr`, or with Meta-SGD `exp(params["log_lr"])`, a pytree
          like the network variables.
        """
        return jax.tree.map(jnp.exp, params["log_lr"]) if self.config.meta_sgd else self.config.inner_lr

    def collect(self, params: Params, task_params: EnvParams, key: chex.PRNGKey,
                epsilon: float) -> Transition:
        """`[L, M]` transitions of one task with ε-greedy on Q(params).

        Args:
          params: meta-parameters (or adapted ones); only the network acts, without gradients.
          task_params: one task (no batch axis).
          key: consumed.
          epsilon: ε; ≥ 1 is a uniform random walk.

        Returns:
          `Transition` with leading shape `[L, M]` (`config.rollout_length`, `config.num_envs`).
        """
        return rollout.collect(self.family.env, self.network.apply, self.net(params), task_params, key,
                               num_envs=self.config.num_envs, length=self.config.rollout_length,
                               epsilon=epsilon)

    def episode_return(self, params: Params, task_params: EnvParams, key: chex.PRNGKey) -> chex.Array:
        """The return of one fresh episode acting ε-greedy at `config.eval_epsilon`, mean over envs.

        The episode runs to its end (H = the family's episode length steps at most), whatever
        `config.rollout_length` is: the protocols measure whole episodes, as the MAML paper does.

        Args:
          params: the parameters that act (meta-learned, adapted, or a baseline's).
          task_params: one task (no batch axis).
          key: consumed.

        Returns:
          `[]` the first episode's undiscounted return averaged over `config.num_envs` envs.
        """
        data = rollout.collect(self.family.env, self.network.apply, self.net(params), task_params, key,
                               num_envs=self.config.num_envs, length=self.family.episode_length,
                               epsilon=self.config.eval_epsilon)
        return rollout.episode_returns(data, 1)[0]

    def td_loss(self, params: Params, target_params: Params, batch: Transition) -> chex.Array:
        """The TD loss of Q(params) on `batch`, bootstrapping from Q(target_params) at `config.gamma`.

        Args:
          params: meta-parameters, differentiated.
          target_params: meta-parameters of the target network.
          batch: transitions of any leading shape.

        Returns:
          `[]` the mean loss (`losses.td_loss`).
        """
        return losses.td_loss(self.network.apply, self.net(params), self.net(target_params), batch,
                              self.config.gamma)

    def inner_data(self, target_net: Params, batch: Transition) -> tuple[Transition, chex.Array]:
        """`(batch, target values at batch.next_obs)`, the data of `inner_loss`: the values do not
        depend on the parameters being fitted, so a loop of steps on `batch` computes them once.

        Args:
          target_net: the target network's variables (not meta-parameters: see `net`).
          batch: transitions with leading shape `[...]`, e.g. `[L, M]`.

        Returns:
          `(batch, q_t[..., A])`.
        """
        return batch, self.network.apply(target_net, batch.next_obs)

    def inner_loss(self, net: Params, data: tuple) -> chex.Array:
        """The inner loss of network variables on `inner_data`: `(transitions, target values at next_obs)`.

        Args:
          net: network variables, differentiated.
          data: `inner_data`'s `(batch, q_t[..., A])`, optionally with `weights[...]` after them
            (0 for rows of a buffer not yet filled).

        Returns:
          `[]` the mean (weighted mean) TD loss.
        """
        return self._fitted_loss(self.network.apply, net, data)

    def _fitted_loss(self, apply_fn: Callable, params: Params, data: tuple) -> chex.Array:
        """The TD loss of `apply_fn(params, batch.obs)` against `data`'s fixed target values."""
        batch, q_t, *weights = data
        return losses.td_loss(apply_fn, params, None, batch, self.config.gamma, q_t=q_t,
                              weights=weights[0] if weights else None)

    def inner(self, params: Params, target_params: Params, support: Transition, *,
              first_order: bool, steps: int | None = None, path: bool = False) -> Params:
        """Adapt `params` on one task's support data: K SGD steps of the TD loss.

        Only the network adapts; Meta-SGD's rates ride along unchanged, so the result has the
        structure of `params`. With `path`, the network variables after each step, `[K, ...]`.

        Args:
          params: meta-parameters θ.
          target_params: meta-parameters of the target network, for the TD targets.
          support: the task's support transitions, e.g. `[L, M]`.
          first_order: stop gradients through the inner gradients (first-order MAML).
          steps: K; None for `config.inner_steps`.
          path: return every step's network variables rather than the last parameters.

        Returns:
          The adapted meta-parameters, or with `path` the network variables stacked `[K, ...]`.
        """
        steps = self.config.inner_steps if steps is None else steps
        data = self.inner_data(self.net(target_params), support)
        adapted = self.adapt_net(self.net(params), data, lr=self.inner_lr(params), steps=steps,
                                 first_order=first_order, path=path)
        return adapted if path else self.with_net(params, adapted)

    def adapt_net(self, net: Params, data: tuple, *, lr: float | Params, steps: int, first_order: bool,
                  path: bool = False) -> Params:
        """`steps` SGD steps of `inner_loss` on `data` from the network variables `net`.

        With `config.adapt == "head"` (ANIL) only the output layer moves: the torso's features of
        `data`'s observations are computed once, before the steps, and each step is the output
        layer's alone; the meta-gradient still flows into the torso through those features.

        Args:
          net: network variables.
          data: `inner_data`'s `(batch, q_t)`, optionally with `weights` after them.
          lr: α, a scalar or a pytree like `net` (Meta-SGD's rates; ANIL reads its head's).
          steps: K.
          first_order: stop gradients through the inner gradients.
          path: return the variables after every step, stacked `[K, ...]`.

        Returns:
          Variables structured like `net` (with a leading `[K]` if `path`).
        """
        config = self.config
        if config.adapt == "all":
            return inner.adapt(net, self.inner_loss, data, steps=steps, lr=lr, first_order=first_order,
                               remat=config.remat, path=path)
        name = self.network.head_name
        batch, q_t, *weights = data
        features = self.network.apply(net, batch.obs, features=True)
        per_leaf_lr = jax.tree.structure(lr) == jax.tree.structure(net)
        head = inner.adapt(net["params"][name], self.head_loss, (batch._replace(obs=features), q_t, *weights),
                           steps=steps, lr=lr["params"][name] if per_leaf_lr else lr, first_order=first_order,
                           remat=config.remat, path=path)
        torso = net if not path else jax.tree.map(lambda x: jnp.broadcast_to(x, (steps, *x.shape)), net)
        return {**torso, "params": {**torso["params"], name: head}}

    def head_loss(self, head: Params, data: tuple) -> chex.Array:
        """`inner_loss` of the output layer alone, on data whose observations are the torso's features.

        Args:
          head: the output layer's variables, differentiated.
          data: `(batch with obs = features [..., F], q_t[..., A])`, optionally with `weights`.

        Returns:
          `[]` the mean (weighted mean) TD loss.
        """
        return self._fitted_loss(networks.output_layer, head, data)

    def support(self, params: Params, task_params: EnvParams, key: chex.PRNGKey) -> Transition:
        """One task's support rollout: `collect` at `config.support_epsilon`.

        Args:
          params: meta-parameters θ.
          task_params: one task (no batch axis).
          key: consumed.

        Returns:
          `Transition` with leading shape `[L, M]`.
        """
        return self.collect(params, task_params, key, self.config.support_epsilon)

    def task_stats(self, params, target_params, support, query, meta_loss) -> TaskStats:
        """One task's scalars of a meta-step.

        Args:
          params (Params): meta-parameters θ, before adaptation.
          target_params (Params): meta-parameters of the target network.
          support (Transition): the support rollout `[L, M]`, of θ.
          query (Transition): the query rollout `[L, M]`, of the adapted parameters.
          meta_loss (chex.Array): `[]` the algorithm's meta-loss on the query data.

        Returns:
          `TaskStats`: `meta_loss`, θ's TD loss on `support`, and the episode returns of both rollouts.
        """
        return TaskStats(meta_loss=meta_loss,
                         support_loss=self.td_loss(params, target_params, support),
                         pre_return=rollout.episode_return(support),
                         post_return=rollout.episode_return(query))


def outer_learning_rate(config: MetaConfig, peak: float | None = None) -> optax.ScalarOrSchedule:
    """`outer_lr` (or `peak`), constant or decaying to 0 by the run's last optimiser update (`outer_schedule`).

    The optimiser counts its own updates: one a meta-step, but `gradient_steps` a meta-step for
    the latent kind, whose meta-step is that many TD steps.

    Args:
      config: its `outer_lr`, `outer_schedule`, `meta_steps` (and the latent kind's `gradient_steps`).
      peak: the step size at the first update, if not `outer_lr` (Meta-SGD's `meta_sgd_lr`).

    Returns:
      The number, or an optax schedule of the update count.
    """
    peak = config.outer_lr if peak is None else peak
    updates = config.meta_steps * (config.gradient_steps if config.kind == "latent" else 1)
    if config.outer_schedule == "cosine":
        return optax.cosine_decay_schedule(peak, updates)
    if config.outer_schedule == "linear":
        return optax.linear_schedule(peak, 0.0, updates)
    return peak


def clipped(config: MetaConfig, optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """`optimizer` after clipping the gradient's global norm to `max_grad_norm` (> 0).

    The clipping's state is empty whether it clips or not, so a run at 0 has a population member's
    state structure. A population that varies `max_grad_norm` reads it as an array: its members at
    0 clip at an infinite bound, which leaves a finite gradient as it is.

    Args:
      config: its `max_grad_norm`, a number or (in a population) a traced `[]` array.
      optimizer: the transformation to apply after clipping.

    Returns:
      `optax.chain(clipping, optimizer)`.
    """
    bound = config.max_grad_norm
    if isinstance(bound, (int, float)):
        clip = optax.clip_by_global_norm(bound) if bound > 0 else optax.identity()
    else:
        clip = optax.clip_by_global_norm(jnp.where(bound > 0, bound, jnp.inf))
    return optax.chain(clip, optimizer)


def make_optimizer(config: MetaConfig) -> optax.GradientTransformation:
    """The outer optimiser the config names, with global-norm clipping when asked.

    Args:
      config: its `outer_optimizer`, `max_grad_norm` (> 0 clips) and `outer_learning_rate`'s fields.

    Returns:
      An optax transformation.
    """
    return clipped(config, {"adam": optax.adam, "sgd": optax.sgd}[config.outer_optimizer](outer_learning_rate(config)))


def with_meta_sgd(config: MetaConfig, optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """`optimizer` for the network; with Meta-SGD, Adam at `meta_sgd_lr` for the log-rates.

    The rates get their own step size: at the network's (≈1e-3) log α barely moves. It decays on
    the outer schedule as the network's does, and their gradient's norm is clipped apart from the
    network's (`max_grad_norm`): on nav2d the meta-gradient's norm, ≈0.02 for thousands of steps,
    spiked to 10⁸ and 3 of 5 runs at a constant lr collapsed (results/nav2d/regenerate.sh).

    Args:
      config: its `meta_sgd`, `meta_sgd_lr`, `max_grad_norm` and `outer_learning_rate`'s fields.
      optimizer: the outer optimiser of the network variables.

    Returns:
      `optimizer` itself without Meta-SGD, else an `optax.multi_transform` over `{"net", "log_lr"}`.
    """
    if not config.meta_sgd:
        return optimizer
    rates = clipped(config, optax.adam(outer_learning_rate(config, config.meta_sgd_lr)))
    return optax.multi_transform({"net": optimizer, "log_lr": rates}, {"net": "net", "log_lr": "log_lr"})


def task_batch(config: MetaConfig, num_tasks: int) -> int:
    """How many of a device's `num_tasks` tasks are vmapped at once (`config.task_batch`).

    Automatic (0): all of them on an accelerator; one at a time on a CPU, where a task's
    activations stay in cache (benchmarks/RESULTS.md: the T=64 second-order step 1.6–1.7× faster).

    Args:
      config: its `task_batch` is used.
      num_tasks: the tasks on one device, `T / devices`.

    Returns:
      The batch size for `lax.map`, from 1 to `num_tasks`.
    """
    if config.task_batch:
        return min(config.task_batch, num_tasks)
    return 1 if jax.default_backend() == "cpu" else num_tasks


def meta_update(config: MetaConfig, family: TaskFamily, optimizer: optax.GradientTransformation,
                task_grad: KindGradFn) -> UpdateFn:
    """The outer update every kind shares, from its per-task meta-gradient `task_grad`.

    Draws `num_tasks` training tasks, splits them over the devices of the `task` axis (and
    `task_batch` at a time on each), averages the tasks' gradients, takes one optimiser step and
    refreshes the target network every `target_update_period` steps. The learner's own state
    rides along unchanged.

    Args:
      config: its `num_tasks`, `task_batch` and `target_update_period` are used.
      family: the training tasks' family.
      optimizer: the outer optimiser of the whole meta-parameters.
      task_grad: `task_grad(params, target_params, learner_state, task_params, key) -> (grad, TaskStats)`.

    Returns:
      `update(state, key) -> (state, Metrics)`, jit-able.
    """
    def group_grad(params, target_params, learner_state, task_params, keys):
        """The mean meta-gradient of one device's tasks `[T / devices]`, `task_batch` at a time."""
        grads, stats = jax.lax.map(lambda tk: task_grad(params, target_params, learner_state, *tk),
                                   (task_params, keys), batch_size=task_batch(config, keys.shape[0]))
        return jax.lax.pmean(jax.tree.map(lambda g: jnp.mean(g, axis=0), grads), "task"), stats

    def update(state: MetaState, key: chex.PRNGKey) -> tuple[MetaState, Metrics]:
        k_tasks, k_run = jax.random.split(key)
        groups = distributed.task_groups()
        tasks, keys = jax.tree.map(  # [devices, T / devices]: one group of tasks per device
            lambda x: x.reshape(groups, -1, *x.shape[1:]),
            (family.train_tasks(k_tasks, config.num_tasks), jax.random.split(k_run, config.num_tasks)))
        grads, stats = jax.vmap(group_grad, in_axes=(None, None, None, 0, 0), out_axes=(None, 0), axis_name="task")(
            state.params, state.target_params, state.learner_state, *distributed.along_tasks((tasks, keys)))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        target = optax.periodic_update(params, state.target_params, step, config.target_update_period)
        metrics = Metrics(**{k: jnp.mean(v) for k, v in stats._asdict().items()},
                          grad_norm=optax.tree.norm(grads))
        return MetaState(params, target, opt_state, step, state.learner_state), metrics

    return update


def initial_meta_state(params: Params, optimizer: optax.GradientTransformation, learner_state: Any = ()) -> MetaState:
    """The state before the first meta-step: θ, its copy as the target, the optimiser's state.

    Args:
      params: the initial meta-parameters θ.
      optimizer: the outer optimiser.
      learner_state: the learner's own state.

    Returns:
      The `MetaState` at step 0.
    """
    target = jax.tree.map(jnp.copy, params)  # its own buffers, so `update` can donate both
    return MetaState(params=params, target_params=target, opt_state=optimizer.init(params),
                     step=jnp.zeros((), jnp.int32), learner_state=learner_state)


def gradient_trial(problem: MetaQProblem, params: Params, task_params: EnvParams, key: chex.PRNGKey,
                   num_episodes: int) -> chex.Array:
    """A gradient learner's trial: act, and every `adapt_every` env steps adapt on the data so far.

    The trial runs `E × H` steps (H: the family's episode length) in `num_envs` environments of
    one task, ε-greedy at `eval_epsilon`; each environment is one agent, as a memory learner's
    carry is. After each block of `adapt_every` steps (default H) an environment's acting
    parameters become θ adapted by K first-order inner steps on every transition of the trial so
    far in that environment, as in meta-training's adaptation from θ on support data.

    Args:
      problem: the meta-Q problem.
      params: meta-parameters θ (also the target network of the inner TD losses).
      task_params: one task (no batch axis).
      key: consumed.
      num_episodes: E.

    Returns:
      `[E]` the mean return of episode 1..E over the environments.
    """
    config, env = problem.config, problem.family.env
    length = num_episodes * problem.family.episode_length
    every = config.adapt_every or problem.family.episode_length
    blocks = -(-length // every)
    begin = rollout.start_rollout(env, task_params, key, num_envs=config.num_envs, length=blocks * every,
                                  num_actions=env.num_actions, epsilon=config.eval_epsilon)
    per_block = jax.tree.map(lambda x: x.reshape(blocks, every, *x.shape[1:]), begin.per_step)
    target_net = problem.net(params)
    lr = problem.inner_lr(params)
    per_env_apply = jax.vmap(problem.network.apply)  # nets [M, ...], obs [M, *obs] -> q [M, A]

    def adapt_one(data):  # one environment's agent, on its own transitions `[L]`
        return problem.adapt_net(problem.net(params), data, lr=lr, steps=config.inner_steps, first_order=True)

    def block(carry, xs):
        obs, state, nets, buffer = carry
        index, per_step = xs
        (obs, state), transitions = jax.lax.scan(
            rollout.acting_step(env, per_env_apply, nets, task_params, config.eval_epsilon), (obs, state), per_step)
        buffer = jax.tree.map(lambda b, t: jax.lax.dynamic_update_slice_in_dim(b, t, index * every, axis=0),
                              buffer, transitions)
        seen = (jnp.arange(blocks * every) < (index + 1) * every)[:, None]  # [L, 1]: filled rows
        data = (*problem.inner_data(target_net, buffer), jnp.broadcast_to(seen, buffer.reward.shape))
        nets = jax.vmap(adapt_one, in_axes=1)(data)  # every leaf of `data` is [L, M, ...]
        return (obs, state, nets, buffer), None

    rows = (blocks * every, config.num_envs)
    empty = Transition(obs=jnp.zeros(rows[:1] + begin.obs.shape, begin.obs.dtype), action=jnp.zeros(rows, jnp.int32),
                       reward=jnp.zeros(rows, jnp.float32), next_obs=jnp.zeros(rows[:1] + begin.obs.shape, begin.obs.dtype),
                       terminated=jnp.zeros(rows, bool), truncated=jnp.zeros(rows, bool))
    nets = jax.tree.map(lambda x: jnp.broadcast_to(x, (config.num_envs, *x.shape)), problem.net(params))
    (_, _, _, buffer), _ = jax.lax.scan(block, (begin.obs, begin.state, nets, empty),
                                        (jnp.arange(blocks), per_block))
    return rollout.episode_returns(jax.tree.map(lambda x: x[:length], buffer), num_episodes)


def build_learner(problem: MetaQProblem, optimizer: optax.GradientTransformation,
                  task_grad: TaskGradFn) -> MetaLearner:
    """Assemble a gradient-kind `MetaLearner` from an algorithm's per-task meta-gradient `task_grad`.

    Args:
      problem: the network, family and config.
      optimizer: the outer optimiser of the whole meta-parameters (with Meta-SGD, as
        `with_meta_sgd` gives it).
      task_grad: `task_grad(problem, params, target_params, task_params, key) -> (grad, TaskStats)`.

    Returns:
      The `MetaLearner` of kind `"gradient"`; `adapt` and `evaluate` adapt first-order, and
      default `target_params` to `params`.
    """
    config = problem.config

    def init(key: chex.PRNGKey) -> MetaState:
        return initial_meta_state(problem.init_params(key), optimizer)

    update = meta_update(config, problem.family, optimizer,
                         lambda params, target, _, task, key: task_grad(problem, params, target, task, key))

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        return gradient_trial(problem, state.params, task_params, key, num_episodes)

    def adapt(params: Params, task_params: EnvParams, key: chex.PRNGKey,
              target_params: Params | None = None) -> Params:
        target = params if target_params is None else target_params
        support = problem.support(params, task_params, key)
        return problem.inner(params, target, support, first_order=True)

    def evaluate(params: Params, task_params: EnvParams, key: chex.PRNGKey,
                 num_steps: int | None = None, target_params: Params | None = None) -> chex.Array:
        num_steps = config.inner_steps if num_steps is None else num_steps
        target = params if target_params is None else target_params
        k_support, k_eval = jax.random.split(key)
        support = problem.support(params, task_params, k_support)

        def ret(p):  # the same eval key at every step count: differences come from adaptation
            return problem.episode_return(p, task_params, k_eval)

        def step(p, _):
            p = problem.inner(p, target, support, first_order=True, steps=1)
            return p, ret(p)

        _, returns = jax.lax.scan(step, params, None, length=num_steps)
        return jnp.concatenate([ret(params)[None], returns])

    env_steps = 2 * config.num_tasks * config.num_envs * config.rollout_length  # support and query
    return MetaLearner(kind="gradient", init=init, update=update, trial=trial, env_steps_per_update=env_steps,
                       adapt=adapt, evaluate=evaluate)
