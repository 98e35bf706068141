"""Meta-Q-Learning (Fakoor et al. 2020) as a discrete-action Q-learner: multi-task Q-learning with a
recurrent context, and adaptation that reuses the meta-training replay weighted by a propensity score.

The Q-network reads the last H = `history_length` steps' inputs (observation, previous action,
reward, done: `networks.rl2_inputs`), a GRU over them giving the context (`ContextQNetwork`).
Meta-training is plain multi-task double DQN on the training tasks, no inner loop: each meta-step
collects one episode per environment on `num_tasks` tasks of the run's pool (`offpolicy`),
ε-greedy at `epsilon`, and takes `gradient_steps` TD steps on their replays.

Adaptation to a new task (in the trial, after each episode, for each environment on its own
data): fit a logistic regression that tells `propensity_samples` meta-training replay samples from
the new data by their context (`metaq_jax.propensity`); then from θ_meta take `adapt_steps` Adam
steps of the TD loss on the new data, and `adapt_steps` more on the replay samples weighted by
β = min(exp(−logit), `beta_clip`) plus λ‖θ − θ_meta‖², λ = 1 − ESS(β). The next episode acts with
the adapted parameters; θ_meta itself never changes (the adapted parameters are a separate pytree).
The replay stores each step's own input once (and the next step's input), not its window: a
stored item also holds its slot in the replay, and a window is gathered at sampling from the
items `num_envs`, 2 × `num_envs`, … slots before it, the same environment's earlier steps of the
same collection (so the replay keeps whole collections: the largest multiple of one that fits in
`replay_size`). A window costs H times an input's memory; stored once, the replay costs 2 inputs
an item (the step's and the next step's).
"""

from typing import Callable, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from metaq_jax import losses, propensity, rollout
from metaq_jax import td3 as T
from metaq_jax.algos import offpolicy
from metaq_jax.algos.base import MetaLearner, initial_meta_state
from metaq_jax.algos.recurrent_td3 import trial_inputs
from metaq_jax.algos.rl2 import MemoryQ, collect_trial, first_episode
from metaq_jax.config import MetaConfig
from metaq_jax.networks import ACTIVATIONS, WindowEncoder, continuous_rl2_inputs, rl2_inputs
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import EnvParams, MetaState, Params, Transition


def windows(inputs: chex.Array, history: int) -> chex.Array:
    """Each step's window of the last `history` inputs, zeros before the rollout's first step.

    Args:
      inputs: `[L, M, F]`.
      history: H.

    Returns:
      `[L, M, H, F]`, row t holding inputs t − H + 1 .. t.
    """
    length = inputs.shape[0]
    padded = jnp.concatenate([jnp.zeros((history - 1, *inputs.shape[1:]), inputs.dtype), inputs])
    return jnp.stack([padded[k:k + length] for k in range(history)], axis=2)


def step_items(inputs: chex.Array, transitions: Transition, num_actions: int | None) -> Transition:
    """A rollout as steps of inputs: `obs` the step's input `[F]`, `next_obs` the next step's input `[F]`.

    The next input is built from the pre-reset next observation (`transitions.next_obs`), so a
    truncated episode bootstraps from where it stopped.

    Args:
      inputs: `[L, M, F]` what the network read at each step.
      transitions: `[L, M]` the rollout.
      num_actions: A of one-hot discrete actions; None for continuous ones (`continuous_rl2_inputs`).

    Returns:
      `Transition` with leading shape `[L, M]`.
    """
    done = transitions.terminated | transitions.truncated
    next_input = (continuous_rl2_inputs(transitions.next_obs, transitions.action, transitions.reward, done)
                  if num_actions is None else
                  rl2_inputs(transitions.next_obs, transitions.action, transitions.reward, done, num_actions))
    return transitions._replace(obs=inputs, next_obs=next_input)


def replay_items(inputs: chex.Array, transitions: Transition, history: int, num_actions: int | None) -> Transition:
    """A rollout as MQL's replay items: `obs` the step's window `[H, F]`, `next_obs` the next step's input `[F]`.

    Args:
      inputs: `[L, M, F]` what the network read at each step.
      transitions: `[L, M]` the rollout.
      history: H.
      num_actions: A of one-hot discrete actions; None for continuous ones.

    Returns:
      `Transition` with leading shape `[L, M]`.
    """
    steps = step_items(inputs, transitions, num_actions)
    return steps._replace(obs=windows(steps.obs, history))


class StoredItem(NamedTuple):
    """One step as MQL's replay stores it.

    Attributes:
      step: `obs` the step's input `[F]`, `next_obs` the next step's input `[F]`.
      slot: `[]` int32, where the item sits in its replay.
    """

    step: Transition
    slot: chex.Array


def stored_items(inputs: chex.Array, transitions: Transition, num_actions: int | None,
                 first_slot: chex.Array) -> StoredItem:
    """A rollout as the items one replay `add` stores from slot `first_slot` on, step by step.

    Args:
      inputs: `[L, M, F]` what the network read at each step.
      transitions: `[L, M]` the rollout.
      num_actions: A of one-hot discrete actions; None for continuous ones.
      first_slot: `[]` int, the replay's write position before the add.

    Returns:
      `StoredItem` `[L × M]`, item t × M + m environment m's step t.
    """
    steps = offpolicy.flat(step_items(inputs, transitions, num_actions))
    return StoredItem(steps, first_slot + jnp.arange(inputs.shape[0] * inputs.shape[1], dtype=jnp.int32))


def gather_windows(inputs: chex.Array, slots: chex.Array, history: int, num_envs: int,
                   collection: int) -> chex.Array:
    """The windows of the items at `slots`, read from a replay's stored inputs.

    Item s's window holds the inputs at s − (H − 1) M, …, s − M, s, zeros where a slot falls before
    its collection's first (a replay holds whole collections of C items, environment-major by step).

    Args:
      inputs: `[R, F]` one replay's stored inputs.
      slots: `[...]` int, the items' slots.
      history: H.
      num_envs: M.
      collection: C, the items of one collection.

    Returns:
      `[..., H, F]`, as `windows` gives them at collection.
    """
    back = (num_envs * jnp.arange(history - 1, -1, -1)).reshape((1,) * slots.ndim + (history,))
    positions = slots[..., None] - back
    valid = (slots % collection)[..., None] >= back
    return jnp.where(valid[..., None], inputs[jnp.maximum(positions, 0)], 0.0)


def td_batch(items: Transition) -> Transition:
    """Replay items as a TD batch: `next_obs` becomes the next window (the window shifted by one).

    Args:
      items: `[...]` replay items (`replay_items`): `obs` `[..., H, F]`, `next_obs` `[..., F]`.

    Returns:
      `Transition` `[...]` whose `obs` and `next_obs` are both windows `[..., H, F]`.
    """
    return items._replace(next_obs=jnp.concatenate([items.obs[..., 1:, :], items.next_obs[..., None, :]], axis=-2))


def mql_td_loss(params: Params, target_params: Params, items: Transition, weights: chex.Array | None = None, *,
                network: nn.Module, gamma: chex.Numeric) -> chex.Array:
    """The double-DQN TD loss of replay items (`replay_items`), weighted when `weights` are given. `[]`.

    Args:
      params: online parameters, differentiated.
      target_params: target-network parameters.
      items: `[...]` replay items.
      weights: `[...]` per-item weights (β, or 0 for unfilled rows); None: the plain mean.
      network: `window -> q`.
      gamma: discount.

    Returns:
      `[]` the (weighted) mean of `0.5 * error²`.
    """
    return losses.td_loss(network.apply, params, target_params, td_batch(items), gamma, double_q=True, weights=weights)


def propensity_reuse(config: MetaConfig, old_context: chex.Array, old_mask: chex.Array, new_context: chex.Array,
                     new_mask: chex.Array) -> tuple[chex.Array, chex.Array]:
    """MQL's weights of the old samples: β from a logistic regression that tells them (label 1) from
    the new data (label 0) by context, and the proximal coefficient λ = 1 − ESS(β).

    Args:
      config: its `beta_clip` is used.
      old_context: `[N, Z]` the meta-training samples' context.
      old_mask: `[N]` 1 for the rows that hold data.
      new_context: `[R, Z]` the new task's.
      new_mask: `[R]` 1 for the rows that hold data.

    Returns:
      `(β [N], 0 where a row is empty; λ [])`.
    """
    x = jnp.concatenate([old_context, new_context])
    y = jnp.concatenate([jnp.ones_like(old_mask), jnp.zeros(new_mask.shape, old_mask.dtype)])
    w, b = propensity.logistic_fit(x, y, jnp.concatenate([old_mask, new_mask.astype(old_mask.dtype)]))
    beta = jnp.where(old_mask > 0, propensity.propensity_weights(old_context, w, b, config.beta_clip), 0.0)
    return beta, 1.0 - propensity.effective_sample_size(beta, old_mask)


def adam_steps(config: MetaConfig, direction: Callable[[Params], Params], params: Params) -> Params:
    """`adapt_steps` Adam steps (`adapt_lr`) from `params` along `direction(params)`, a fresh Adam state.

    Args:
      config: its `adapt_steps` and `adapt_lr` are used.
      direction: `params -> gradient` (structured like `params`), read at each step's parameters.
      params: the starting parameters.

    Returns:
      The parameters after the last step, structured like `params`.
    """
    optimizer = optax.adam(config.adapt_lr)

    def one(carry, _):
        params, opt_state = carry
        updates, opt_state = optimizer.update(direction(params), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(one, (params, optimizer.init(params)), None, length=config.adapt_steps)[0][0]


def proximal_term(params: Params, meta_params: Params) -> chex.Array:
    """‖θ − θ_meta‖², the proximal term of the reuse steps. `[]`.

    Args:
      params: θ.
      meta_params: θ_meta, structured like `params`.

    Returns:
      `[]` the squared norm of the difference.
    """
    return optax.tree.norm(optax.tree.sub(params, meta_params), squared=True)


def adapt(network: nn.Module, config: MetaConfig, meta_params: Params, new: Transition, new_mask: chex.Array,
          old: Transition, old_mask: chex.Array) -> Params:
    """MQL's adaptation of θ_meta to a new task; θ_meta is not changed.

    Fits the propensity model on the context of the old samples (label 1) and of the new data
    (label 0), then takes `adapt_steps` Adam steps (`adapt_lr`) of the TD loss on the new data
    and `adapt_steps` more of the β-weighted TD loss on the old samples plus λ‖θ − θ_meta‖²,
    λ = 1 − ESS(β); every TD target is θ_meta's.

    Args:
      network: `window -> q` with a `context` method.
      config: its `adapt_steps`, `adapt_lr`, `beta_clip` and `gamma` are used.
      meta_params: θ_meta.
      new: `[R]` the new task's replay items.
      new_mask: `[R]` 1 for the rows that hold data.
      old: `[N]` meta-training replay items.
      old_mask: `[N]` 1 for the rows that hold data.

    Returns:
      The adapted parameters, structured like `meta_params`.
    """
    def context(items):
        return network.apply(meta_params, items.obs, method="context")

    beta, proximal = propensity_reuse(config, context(old), old_mask, context(new), new_mask)

    def td(params, items, weights):
        return mql_td_loss(params, meta_params, items, weights, network=network, gamma=config.gamma)

    def reuse(params):
        return td(params, old, beta) + proximal * proximal_term(params, meta_params)

    return adam_steps(config, jax.grad(reuse), adam_steps(config, jax.grad(lambda p: td(p, new, new_mask)), meta_params))


def window_memory(apply_fn: Callable[[Params, chex.Array], chex.Array], history: int, features: int,
                  per_env: bool = False) -> MemoryQ:
    """`MemoryQ` whose memory is the window of the last `history` inputs, for `rl2.collect_trial`.

    Args:
      apply_fn: `(params, window[M, H, F]) -> q[M, A]`.
      history: H.
      features: F.
      per_env: the params have a leading `[M]` axis, one set per environment (adapted agents).

    Returns:
      The `MemoryQ` (no `sequence`: learning reads windows from the replay).
    """
    act = jax.vmap(apply_fn) if per_env else apply_fn

    def step(params, window, x, t):
        del t
        window = jnp.concatenate([window[:, 1:], x[:, None]], axis=1)
        return window, act(params, window)

    return MemoryQ(initial_memory=lambda _, num_envs: jnp.zeros((num_envs, history, features), jnp.float32),
                   step=step, sequence=None)


class WindowLearner(NamedTuple):
    """The Q-learner MQL trains on windows of inputs, for a family's kind of actions.

    Attributes:
      init: `(key, window[H, F]) -> params`.
      play: `(params, task, key, epsilon, per_env) -> (inputs [L, M, F], transitions [L, M])`: one
        episode in M environments; `per_env`: params with a leading `[M]` axis, one set per environment.
      td_grads: `(params, target_params, items, key) -> (loss [], grads)`: one meta-training step's
        direction on replay items.
      adapt: `(θ_meta, new, new_mask, old, old_mask, key) -> params`: the adaptation to a new task.
      features: F, an input's size.
      action: a replay item's action (no batch axis).
      num_actions: A of one-hot discrete actions; None for continuous ones.
    """

    init: Callable
    play: Callable
    td_grads: Callable
    adapt: Callable
    features: int
    action: chex.Array
    num_actions: int | None


def dqn_window_learner(config: MetaConfig, family: TaskFamily, network: nn.Module) -> WindowLearner:
    """Double DQN over windows, `network` `window -> q[..., A]` with a `context` method.

    Args:
      config: its `history_length`, `num_envs`, `gamma` and `adapt`'s fields are used.
      family: a family with discrete actions.
      network: `window[..., H, F] -> q[..., A]` with a `context(window) -> [..., Z]` method.

    Returns:
      The `WindowLearner`; F = observation size + A + 2.
    """
    env, history = family.env, config.history_length
    obs, _ = env.reset(jax.random.key(0), family.default_params)
    features = obs.size + env.num_actions + 2

    def play(params, task, key, epsilon, per_env):
        memory = window_memory(network.apply, history, features, per_env=per_env)
        trial = collect_trial(env, memory, params, memory.initial_memory((), config.num_envs), task, key,
                              num_envs=config.num_envs, length=family.episode_length, epsilon=epsilon)
        return trial.inputs, trial.transitions

    def td_grads(params, target_params, items, key):
        del key
        return jax.value_and_grad(mql_td_loss)(params, target_params, items, network=network, gamma=config.gamma)

    return WindowLearner(init=network.init, play=play, td_grads=td_grads,
                         adapt=lambda meta, new, new_mask, old, old_mask, key: adapt(network, config, meta, new,
                                                                                     new_mask, old, old_mask),
                         features=features, action=jnp.zeros((), jnp.int32), num_actions=env.num_actions)


def td3_window_learner(config: MetaConfig, family: TaskFamily) -> WindowLearner:
    """TD3 over windows for continuous actions, as in the MQL paper: the actor and the twin critics each
    read the window through a context GRU of their own (`WindowEncoder`, `latent_size` wide) under
    TD3's heads; params `{"actor", "critic"}`, each `{"encoder", "head"}`. Meta-training steps move
    each part along its own loss (the actor at every step); adaptation fits the propensity model on
    the critics' context and takes the same Adam steps as the discrete learner, each part along its
    own (weighted) loss plus the proximal term.

    Args:
      config: its `history_length`, `latent_size`, `hidden_sizes`, `activation`, `num_envs`, `gamma`
        and `adapt`'s fields are used.
      family: a family with continuous actions.

    Returns:
      The `WindowLearner`; F = observation size + action size + 2.
    """
    env, history, activation = family.env, config.history_length, ACTIVATIONS[config.activation]
    size = env.action_space(family.default_params).shape[0]
    obs, _ = env.reset(jax.random.key(0), family.default_params)
    features = obs.size + size + 2
    encoder = WindowEncoder(config.latent_size)
    actor, critic = T.Actor(size, config.hidden_sizes, activation), T.TwinCritic(config.hidden_sizes, activation)
    td3 = T.TD3(lambda p, w: actor.apply(p["head"], encoder.apply(p["encoder"], w)),
                lambda p, w, a: critic.apply(p["head"], encoder.apply(p["encoder"], w), a), gamma=config.gamma)

    def init(key, window):
        keys = jax.random.split(key, 4)
        x = jnp.zeros(config.latent_size + features)
        return {"actor": {"encoder": encoder.init(keys[0], window), "head": actor.init(keys[1], x)},
                "critic": {"encoder": encoder.init(keys[2], window), "head": critic.init(keys[3], x, jnp.zeros(size))}}

    def play(params, task, key, epsilon, per_env):
        act = jax.vmap(td3.actor_fn) if per_env else td3.actor_fn

        def policy(p, window, obs, previous):
            window = jnp.concatenate([window[:, 1:], continuous_rl2_inputs(obs, *previous)[:, None]], axis=1)
            return window, act(p, window)

        noise = jnp.where(jnp.asarray(epsilon) > 0, rollout.EXPLORATION_NOISE, 0.0)  # ε = 0: the actor alone
        transitions = rollout.collect_actions_with_memory(
            env, policy, params["actor"], jnp.zeros((config.num_envs, history, features)), task, key,
            num_envs=config.num_envs, length=family.episode_length, epsilon=epsilon, noise=noise)
        return trial_inputs(transitions), transitions

    def directions(params, batch, targets, weights):
        """Each part's (value, gradient) of its own (weighted) loss on a TD batch, the critics' targets given."""
        actor_part = jax.value_and_grad(T.actor_loss, argnums=1)(td3, params["actor"], params["critic"], batch.obs,
                                                                  weights)
        critic_part = jax.value_and_grad(T.critic_loss, argnums=1)(td3, params["critic"], batch, targets, weights)
        return actor_part[0] + critic_part[0], {"actor": actor_part[1], "critic": critic_part[1]}

    def td_grads(params, target_params, items, key):
        batch = td_batch(items)
        return directions(params, batch, T.critic_targets(td3, target_params, batch, key), None)

    def adapt_td3(meta, new, new_mask, old, old_mask, key):
        def context(items):
            return encoder.apply(meta["critic"]["encoder"], items.obs, method="context")

        beta, proximal = propensity_reuse(config, context(old), old_mask, context(new), new_mask)
        pull = jax.grad(proximal_term)
        # θ_meta's targets do not change over the Adam steps: computed once per data set
        new_batch, old_batch = td_batch(new), td_batch(old)
        new_targets = T.critic_targets(td3, meta, new_batch, key)
        old_targets = T.critic_targets(td3, meta, old_batch, key)

        def reuse(params):
            return jax.tree.map(lambda g, r: g + proximal * r, directions(params, old_batch, old_targets, beta)[1],
                                pull(params, meta))

        first = adam_steps(config, lambda p: directions(p, new_batch, new_targets, new_mask.astype(jnp.float32))[1],
                           meta)
        return adam_steps(config, reuse, first)

    return WindowLearner(init=init, play=play, td_grads=td_grads, adapt=adapt_td3, features=features,
                         action=jnp.zeros(size, jnp.float32), num_actions=None)


def make_mql_learner(config: MetaConfig, family: TaskFamily, network: nn.Module | None,
                     optimizer: optax.GradientTransformation) -> MetaLearner:
    """The latent-kind `MetaLearner` of Meta-Q-Learning (module docstring), over double DQN or, on a
    family with continuous actions, TD3 (`td3_window_learner`).

    Args:
      config: the settings (an `algo="mql"` config).
      family: the task family.
      network: `window[..., H, F] -> q[..., A]` with a `context(window) -> [..., Z]` method (e.g.
        `ContextQNetwork`); None on a continuous-action family.
      optimizer: the outer optimiser.

    Returns:
      The `MetaLearner` of kind `"latent"`; its learner state is the pool (`offpolicy.init_pool`):
      `{"tasks": EnvParams[N], "replay": flashbax state [N] of `StoredItem`s}`.

    Raises:
      InputError: `replay_size` cannot hold one collection (`num_envs` episodes).
    """
    num_envs, horizon, history = config.num_envs, family.episode_length, config.history_length
    learner = td3_window_learner(config, family) if family.continuous_actions else dqn_window_learner(
        config, family, network)
    features = learner.features
    replay = offpolicy.make_replay(config, family, whole_collections=True)
    collection, capacity = horizon * num_envs, offpolicy.replay_capacity(config, family, whole_collections=True)
    step = offpolicy.example_item(jnp.zeros(features))._replace(action=learner.action)
    item = step._replace(obs=jnp.zeros((history, features)))  # as the network and adaptation read it

    def init(key: chex.PRNGKey) -> MetaState:
        k_tasks, k_net = jax.random.split(key)
        params = learner.init(k_net, item.obs)
        return initial_meta_state(params, optimizer, offpolicy.init_pool(
            family, config, replay, k_tasks, StoredItem(step, jnp.zeros((), jnp.int32))))

    def windowed(experience: StoredItem, tasks: chex.Array, slots: chex.Array) -> Transition:
        """The items at `slots` of pool tasks `tasks` (both `[B]`) with their windows: `[B]`."""
        items = jax.tree.map(lambda x: x[tasks, 0, slots], experience.step)
        inputs = jax.vmap(lambda t, s: gather_windows(experience.step.obs[t, 0], s, history, num_envs, collection))
        return items._replace(obs=inputs(tasks, slots))

    def collect_one(shared, xs):
        params, learner_state, _ = shared
        index, key = xs
        task = jax.tree.map(lambda x: x[index], learner_state["tasks"])
        inputs, transitions = learner.play(params, task, key, config.epsilon, False)
        returns = rollout.episode_returns(transitions, 1)[0]
        first_slot = learner_state["replay"].current_index[index]
        return stored_items(inputs, transitions, learner.num_actions, first_slot), (returns, returns)

    def loss_one(shared, xs):
        params, target_params, learner_state = shared
        index, key = xs
        own = offpolicy.task_replay(learner_state, index)
        slots = replay.sample(own, key).experience.slot
        items = windowed(learner_state["replay"].experience, jnp.full(slots.shape, index), slots)
        weight = replay.can_sample(own).astype(jnp.float32)
        value, grad = learner.td_grads(params, target_params, items, key)
        return jax.tree.map(lambda g: weight * g, grad), (weight, value, value)

    def replay_samples(learner_state, key):
        """`propensity_samples` items of the meta-training replay, from pool tasks drawn uniformly,
        and a mask of those that hold data (a task whose replay is still empty gives none)."""
        k_task, k_row = jax.random.split(key)
        state = learner_state["replay"]  # item buffers: experience leaves are [N, 1, capacity, ...]
        tasks = jax.random.randint(k_task, (config.propensity_samples,), 0, config.task_pool)
        filled = jnp.where(state.is_full, capacity, state.current_index)[tasks]
        rows = jnp.floor(jax.random.uniform(k_row, tasks.shape) * filled).astype(jnp.int32)
        return windowed(state.experience, tasks, rows), (filled > 0).astype(jnp.float32)

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        rows = num_episodes * horizon
        k_old, k_episodes = jax.random.split(key)
        old, old_mask = replay_samples(state.learner_state, k_old)

        def episode(carry, xs):
            nets, buffer, mask = carry  # per-environment parameters; [E × H, M] items so far
            index, k = xs
            inputs, transitions = learner.play(nets, task_params, k, config.eval_epsilon, True)
            first = first_episode(transitions)  # the episode itself; later steps are not the trial's
            items = replay_items(inputs, transitions, history, learner.num_actions)
            buffer = jax.tree.map(lambda b, d: jax.lax.dynamic_update_slice_in_dim(b, d, index * horizon, axis=0),
                                  buffer, items)
            mask = jax.lax.dynamic_update_slice_in_dim(mask, first, index * horizon, axis=0)
            k_adapt = jax.random.fold_in(k, 1)  # TD3's smoothing noise in adaptation (a DQN draws none)
            nets = jax.vmap(lambda new, new_mask: learner.adapt(state.params, new, new_mask, old, old_mask, k_adapt),
                            in_axes=1)(buffer, mask)
            return (nets, buffer, mask), rollout.episode_returns(transitions, 1)[0]

        nets = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_envs, *x.shape)), state.params)
        _, returns = jax.lax.scan(episode, (nets, offpolicy.zeros(item, rows, num_envs),
                                            jnp.zeros((rows, num_envs), bool)),
                                  (jnp.arange(num_episodes), jax.random.split(k_episodes, num_episodes)))
        return returns

    def support(state: MetaState, task_params: EnvParams, key: chex.PRNGKey) -> chex.Array:
        """A fresh episode with θ_meta, and with θ adapted on a support batch (all its environments together): `[2]`."""
        k_old, k_support, k_adapt, k_eval = jax.random.split(key, 4)
        old, old_mask = replay_samples(state.learner_state, k_old)
        inputs, transitions = learner.play(state.params, task_params, k_support, config.support_epsilon, False)
        new = offpolicy.flat(replay_items(inputs, transitions, history, learner.num_actions))
        adapted = learner.adapt(state.params, new, first_episode(transitions).reshape(-1), old, old_mask, k_adapt)
        return jnp.stack([rollout.episode_returns(learner.play(params, task_params, k_eval, config.eval_epsilon,
                                                               False)[1], 1)[0] for params in (state.params, adapted)])

    update = offpolicy.offpolicy_update(config, optimizer, replay, collect_one, loss_one)
    return MetaLearner(kind="latent", init=init, update=update, trial=trial,
                       env_steps_per_update=config.num_tasks * num_envs * horizon, pooled=True, support=support)
