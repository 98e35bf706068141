"""RL² over TD3: the memory-kind learner of continuous actions, a recurrent actor and twin critics.

A trial is `rl2`'s: E episodes on one task in M environments, each network's memory carried
across episode ends and started afresh only when a trial (a task) starts. The actor and the
critics each read the trial through a recurrent encoder of their own (`RecurrentEncoder` over
each step's observation, previous action, reward and done flag); their heads are TD3's
(`td3.Actor`, `td3.TwinCritic`) on the encoder's features.

Learning is TD3 on whole trials, by backpropagation through time. The critics' target at step t
bootstraps from step t + 1 of the same trial — the smaller target twin at the target actor's
smoothed action — across episode ends, cut only at the trial's last step, with Peng's λ-returns
(`td_lambda`) as in `rl2`; the actor follows −Q₁ of the critics (held fixed) at its own action.
The actor steps at every meta-step: TD3's delay would need a zero update, and a zero gradient
still moves the actor under a momentum optimiser.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax

from metaq_jax import rollout
from metaq_jax import td3 as T
from metaq_jax.algos.base import MetaLearner, TaskStats, initial_meta_state, meta_update
from metaq_jax.algos.rl2 import first_episode
from metaq_jax.config import MetaConfig
from metaq_jax.networks import ACTIVATIONS, RecurrentEncoder, continuous_rl2_inputs
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import EnvParams, MetaState, Params, Transition


class RecurrentTD3(NamedTuple):
    """The networks: one encoder module (each part has its own parameters), TD3's heads and constants."""

    encoder: RecurrentEncoder
    actor: T.Actor
    critic: T.TwinCritic
    td3: T.TD3


def trial_inputs(transitions: Transition) -> chex.Array:
    """Each step's network input in a trial, rebuilt from its transitions. `[L, M, D + A + 2]`.

    Step t reads its observation and step t − 1's action, reward and end-of-episode flag (zeros
    at t = 0), which is what the actor read while acting (`collect_actions_with_memory`).

    Args:
      transitions: `[L, M]`, actions `[L, M, A]`.

    Returns:
      The inputs, `continuous_rl2_inputs` at every step.
    """
    def previous(x):
        return jnp.concatenate([jnp.zeros_like(x[:1]), x[:-1]])

    done = transitions.terminated | transitions.truncated
    return continuous_rl2_inputs(transitions.obs, previous(transitions.action), previous(transitions.reward),
                                 previous(done))


def features(net: RecurrentTD3, encoder_params: Params, carry: chex.ArrayTree, inputs: chex.Array) -> chex.Array:
    """An encoder run over a trial from `carry`. `[L, M, H + F]` for inputs `[L, M, F]`.

    Args:
      net: the networks (its `encoder` module).
      encoder_params: one part's encoder parameters.
      carry: `[M, ...]` the encoder's memory at the trial's start.
      inputs: `[L, M, F]` each step's input (`trial_inputs`).

    Returns:
      `[L, M, H + F]` the encoder's output at every step.
    """
    return jax.lax.scan(lambda c, x: net.encoder.apply(encoder_params, c, x), carry, inputs)[1]


def act(net: RecurrentTD3, actor_params: Params, carry: chex.ArrayTree, obs: chex.Array,
        previous: tuple[chex.Array, chex.Array, chex.Array]) -> tuple[chex.ArrayTree, chex.Array]:
    """One acting step of the recurrent actor (`collect_actions_with_memory`'s policy).

    Args:
      net: the networks.
      actor_params: `{"encoder", "head"}`.
      carry: `[M, ...]` the actor's memory.
      obs: `[M, *obs]`.
      previous: the previous step's `(action[M, A], reward[M], done[M])`.

    Returns:
      `(carry, action[M, A])`.
    """
    carry, x = net.encoder.apply(actor_params["encoder"], carry, continuous_rl2_inputs(obs, *previous))
    return carry, net.actor.apply(actor_params["head"], x)


def trial_critic_targets(net: RecurrentTD3, target_params: Params, carry: chex.ArrayTree, inputs: chex.Array,
                         rewards: chex.Array, key: chex.PRNGKey, td_lambda: chex.Numeric = 0.0) -> chex.Array:
    """TD3's targets over a trial: `G_t = r_t + γ [(1 − λ) v_{t+1} + λ G_{t+1}]`, `G_{L−1} = r_{L−1}`.

    `v_t = min(Q̄₁, Q̄₂)(x̄ᶜ_t, ã_t)` with `ã_t` the target actor's action at step t with TD3's
    clipped smoothing noise, `x̄` the target encoders' features; episode ends inside the trial
    do not cut the bootstrap.

    Args:
      net: the networks.
      target_params: `{"actor", "critic"}` of the target networks.
      carry: `[M, ...]` the memory at the trial's start.
      inputs: `[L, M, F]` from `trial_inputs`.
      rewards: `[L, M]`.
      key: consumed: the smoothing noise.
      td_lambda: λ in [0, 1].

    Returns:
      `[L, M]` the targets (no gradient is taken through them).
    """
    actor_x = features(net, target_params["actor"]["encoder"], carry, inputs)
    critic_x = features(net, target_params["critic"]["encoder"], carry, inputs)
    actions = T.smoothed_target_actions(net.td3, target_params["actor"]["head"], actor_x, key)
    values = jnp.min(net.critic.apply(target_params["critic"]["head"], critic_x, actions), axis=-1)  # [L, M]
    v_next = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])
    discount = jnp.full(values.shape, net.td3.gamma, values.dtype).at[-1].set(0.0)
    lambda_returns = jax.vmap(rlax.lambda_returns, in_axes=(1, 1, 1, None), out_axes=1)
    return jax.lax.stop_gradient(lambda_returns(rewards.astype(values.dtype), discount, v_next,
                                                jnp.asarray(td_lambda, values.dtype)))


def trial_critic_loss(net: RecurrentTD3, critic_params: Params, carry: chex.ArrayTree, inputs: chex.Array,
                      actions: chex.Array, targets: chex.Array) -> tuple[chex.Array, chex.Array]:
    """The critics' TD loss over a trial: the sum over the twins of the mean ½ (Q_i − G)².

    Args:
      net: the networks.
      critic_params: `{"encoder", "head"}`, differentiated through the whole trial.
      carry: `[M, ...]` the memory at the trial's start.
      inputs: `[L, M, F]`.
      actions: `[L, M, A]` the actions taken.
      targets: `[L, M]` from `trial_critic_targets`.

    Returns:
      `(loss [], per-step loss [L, M])`.
    """
    x = features(net, critic_params["encoder"], carry, inputs)
    per_step = jnp.sum(0.5 * jnp.square(net.critic.apply(critic_params["head"], x, actions) - targets[..., None]),
                       axis=-1)
    return jnp.mean(per_step), per_step


def trial_actor_loss(net: RecurrentTD3, actor_params: Params, critic_params: Params, carry: chex.ArrayTree,
                     inputs: chex.Array) -> chex.Array:
    """−mean Q₁ at the actor's own action at every step of a trial, the critics held fixed. `[]`.

    Args:
      net: the networks.
      actor_params: `{"encoder", "head"}`, differentiated through the whole trial.
      critic_params: the critics' (no gradient flows into them).
      carry: `[M, ...]` the memory at the trial's start.
      inputs: `[L, M, F]`.

    Returns:
      The loss.
    """
    critic_params = jax.lax.stop_gradient(critic_params)
    own = net.actor.apply(actor_params["head"], features(net, actor_params["encoder"], carry, inputs))
    x = features(net, critic_params["encoder"], carry, inputs)
    return -jnp.mean(net.critic.apply(critic_params["head"], x, own)[..., 0])


def make_recurrent_td3_learner(config: MetaConfig, family: TaskFamily,
                               optimizer: optax.GradientTransformation) -> MetaLearner:
    """The memory-kind `MetaLearner` (`algo="rl2"`) on a continuous-action family: RL² over TD3.

    Each meta-step draws `num_tasks` training tasks, runs one trial of `trial_episodes` episodes
    on each in `num_envs` environments (ε-uniform at `epsilon`, else the actor plus N(0, 0.1²)),
    and takes one optimiser step on the mean of the tasks' TD3 gradients over their trials: the
    critics' along their TD loss, the actor's along −Q₁.

    Args:
      config: `hidden_sizes` (each encoder's torso and each head), `cell`, `cell_size`,
        `activation`, `gamma` and `td_lambda` shape it; TD3's other constants are the paper's.
      family: a family with continuous actions.
      optimizer: the outer optimiser of the whole parameters.

    Returns:
      The `MetaLearner` of kind `"memory"`; its learner state is the encoders' carry at a trial's
      start (`{"initial_carry": ...}`).
    """
    env, num_envs = family.env, config.num_envs
    size = env.action_space(family.default_params).shape[0]
    length = config.trial_episodes * family.episode_length
    activation = ACTIVATIONS[config.activation]
    encoder = RecurrentEncoder(config.cell_size, config.cell, config.hidden_sizes, activation)
    actor, critic = T.Actor(size, config.hidden_sizes, activation), T.TwinCritic(config.hidden_sizes, activation)
    net = RecurrentTD3(encoder, actor, critic, T.TD3(actor.apply, critic.apply, gamma=config.gamma))
    obs, _ = env.reset(jax.random.key(0), family.default_params)
    inputs = jnp.zeros(obs.size + size + 2)

    def init(key: chex.PRNGKey) -> MetaState:
        carry, x = encoder.initial_carry(()), jnp.zeros(config.cell_size + inputs.size)
        keys = jax.random.split(key, 4)
        params = {"actor": {"encoder": encoder.init(keys[0], carry, inputs), "head": actor.init(keys[1], x)},
                  "critic": {"encoder": encoder.init(keys[2], carry, inputs),
                             "head": critic.init(keys[3], x, jnp.zeros(size))}}
        return initial_meta_state(params, optimizer, {"initial_carry": carry})

    def start(learner_state):
        return jax.tree.map(lambda c: jnp.broadcast_to(c, (num_envs, *c.shape)), learner_state["initial_carry"])

    def play(params, learner_state, task, key, steps, epsilon):
        noise = jnp.where(jnp.asarray(epsilon) > 0, rollout.EXPLORATION_NOISE, 0.0)  # ε = 0: the actor alone
        return rollout.collect_actions_with_memory(
            env, lambda p, c, o, prev: act(net, p, c, o, prev), params["actor"], start(learner_state), task, key,
            num_envs=num_envs, length=steps, epsilon=epsilon, noise=noise)

    def task_grad(params, target_params, learner_state, task, key):
        k_play, k_target = jax.random.split(key)
        transitions = play(params, learner_state, task, k_play, length, config.epsilon)
        carry, xs = start(learner_state), trial_inputs(transitions)
        targets = trial_critic_targets(net, target_params, carry, xs, transitions.reward, k_target, config.td_lambda)

        (c_value, per_step), c_grad = jax.value_and_grad(trial_critic_loss, argnums=1, has_aux=True)(
            net, params["critic"], carry, xs, transitions.action, targets)
        a_value, a_grad = jax.value_and_grad(trial_actor_loss, argnums=1)(net, params["actor"], params["critic"],
                                                                          carry, xs)
        first = first_episode(transitions)
        returns = rollout.episode_returns(transitions, config.trial_episodes)
        stats = TaskStats(meta_loss=c_value + a_value,
                          support_loss=jnp.sum(jnp.where(first, per_step, 0.0)) / jnp.sum(first),
                          pre_return=returns[0], post_return=returns[-1])
        return {"actor": a_grad, "critic": c_grad}, stats

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        played = play(state.params, state.learner_state, task_params, key, num_episodes * family.episode_length,
                      config.eval_epsilon)
        return rollout.episode_returns(played, num_episodes)

    return MetaLearner(kind="memory", init=init, update=meta_update(config, family, optimizer, task_grad),
                       trial=trial, env_steps_per_update=config.num_tasks * num_envs * length)
