"""RL² (Duan et al. 2016) as a Q-learner: a Q-network with memory whose adaptation is its state.

A trial is E episodes (E × H steps, H the family's episode length) on one task in M
environments. Episodes that end inside it are reset with the same task, and the network's memory
runs on across them, so what it learned of the task in one episode serves the next; the memory
starts afresh only when a trial (a task) starts. The objective is the return of the whole trial:
the TD target bootstraps across episode ends, from the step after (the next episode's first),
and is cut only at the trial's last step. Targets are double-Q(λ): λ-returns (Peng's Q(λ), λ =
`td_lambda`) over the trial, bootstrapping at each step from the target network's value of the
action the online network picks.

The memory is a recurrent cell's carry (`RecurrentQNetwork`) or, SNAIL-style, what causal
convolutions and attention have read of the trial so far (`AttentionQNetwork`'s step cache):
`MemoryQ` puts both behind one step function and one whole-sequence function.
"""

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import rlax

from metaq_jax import rollout
from metaq_jax.algos.base import MetaLearner, TaskStats, initial_meta_state, meta_update
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.networks import rl2_inputs
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import EnvParams, MetaState, Params, Transition

if TYPE_CHECKING:  # importing gymnax builds arrays, which starts JAX's backend
    from gymnax.environments import environment

Memory = chex.ArrayTree
RecurrentApplyFn = Callable[[Params, Memory, chex.Array], tuple[Memory, chex.Array]]
"""`apply_fn(params, carry, inputs[..., F]) -> (carry, q[..., A])`: one step of a recurrent Q-network."""


class MemoryQ(NamedTuple):
    """A Q-function with memory over a trial: step by step while acting, whole sequences to learn.

    Attributes:
      initial_memory: `(learner_state, M) -> memory` of M environments at a trial's start.
      step: `(params, memory, inputs[M, F], t) -> (memory, q[M, A])` at step t of the trial.
      sequence: `(params, memory at the start, inputs[L, M, F]) -> q[L, M, A]`, equal to `step`
        run over the L steps.
    """

    initial_memory: Callable[[Any, int], Memory]
    step: Callable[[Params, Memory, chex.Array, chex.Array], tuple[Memory, chex.Array]]
    sequence: Callable[[Params, Memory, chex.Array], chex.Array]


def unroll(apply_fn: RecurrentApplyFn, params: Params, carry: Memory, inputs: chex.Array) -> chex.Array:
    """The Q-values of a recurrent network run over a sequence from `carry`.

    Args:
      apply_fn: one step of the network.
      params: its parameters.
      carry: the carry before the first step, batch shape `[...]`.
      inputs: `[L, ..., F]`.

    Returns:
      `[L, ..., A]` the Q-values at every step.
    """
    def step(c, x):
        return apply_fn(params, c, x)

    return jax.lax.scan(step, carry, inputs)[1]


def recurrent_memory(apply_fn: RecurrentApplyFn) -> MemoryQ:
    """`MemoryQ` of a recurrent network: the memory is its carry, started from the learner state's.

    Args:
      apply_fn: one step, `(params, carry[M], inputs[M, F]) -> (carry, q[M, A])`.

    Returns:
      The `MemoryQ`; `initial_memory` broadcasts the learner state `{"initial_carry": carry[...]}`
      (no batch axis) to M environments.
    """
    def initial_memory(learner_state, num_envs):
        return jax.tree.map(lambda c: jnp.broadcast_to(c, (num_envs, *c.shape)), learner_state["initial_carry"])

    return MemoryQ(initial_memory=initial_memory, step=lambda params, carry, x, t: apply_fn(params, carry, x),
                   sequence=lambda params, carry, xs: unroll(apply_fn, params, carry, xs))


def cached_memory(network: nn.Module, features: int) -> MemoryQ:
    """`MemoryQ` of a causal sequence network with a step cache (e.g. `AttentionQNetwork`).

    The memory is the cache of the trial so far (`network.initial_cache`): each step writes its
    rows and reads step t's Q-values from one row of each block, so acting in a trial of L steps
    costs about one pass over it, as learning does.

    Args:
      network: `apply(params, inputs[L, ..., F]) -> q[L, ..., A]`, causal in L, and
        `apply(params, inputs[..., F], cache, t) -> (cache, q[..., A])` equal to row t.
      features: F.

    Returns:
      The `MemoryQ`; its learner state is unused.
    """
    def initial_memory(learner_state, num_envs):
        del learner_state
        return network.initial_cache(features, (num_envs,))

    return MemoryQ(initial_memory=initial_memory, step=lambda params, cache, x, t: network.apply(params, x, cache, t),
                   sequence=lambda params, _, xs: network.apply(params, xs))


class Trial(NamedTuple):
    """One task's trial in M environments: what the network saw and what happened, `[L, M]`."""

    inputs: chex.Array  # [L, M, F] the network's input at each step (`rl2_inputs`)
    transitions: Transition  # [L, M]; next_obs is the pre-reset observation, as in `rollout.collect`


def collect_trial(env: "environment.Environment", memory_q: MemoryQ, params: Params, memory: Memory,
                  task: EnvParams, key: chex.PRNGKey, *, num_envs: int, length: int, epsilon: chex.Numeric) -> Trial:
    """Run one trial of `length` steps, ε-greedy on the Q-network with memory, in `num_envs` envs.

    The memory starts at `memory` and is never reset inside the trial; an episode that ends is
    reset with the same `task`, and the next input says so (done flag 1). As in
    `rollout.collect`, every step's random numbers are drawn before the scan and no gradient
    flows into the data.

    Args:
      env: a gymnax environment.
      memory_q: the network's step function.
      params: the network acting.
      memory: the memory at the trial's start, for `[M]` environments.
      task: one task's parameters (no batch axis).
      key: consumed.
      num_envs: M.
      length: L.
      epsilon: exploration rate.

    Returns:
      The `Trial`, `[L, M]`.
    """
    params = jax.lax.stop_gradient(params)
    num_actions = env.num_actions
    begin = rollout.start_rollout(env, task, key, num_envs=num_envs, length=length, num_actions=num_actions,
                                  epsilon=epsilon)

    def step(carry, xs):
        obs, state, memory, prev_action, prev_reward, prev_done = carry
        t, (draws, step_keys, reset_keys) = xs
        inputs = rl2_inputs(obs, prev_action, prev_reward, prev_done, num_actions)
        memory, q = memory_q.step(params, memory, inputs, t)
        actions = rollout.greedy_or_random(q, draws)
        next_obs, state, reward, terminated, truncated, final_obs = rollout.step_with_reset(
            env, step_keys, reset_keys, state, actions, task)
        reward = reward.astype(jnp.float32)
        transition = Transition(obs=obs, action=actions, reward=reward, next_obs=final_obs,
                                terminated=terminated, truncated=truncated)
        return (next_obs, state, memory, actions, reward, terminated | truncated), (inputs, transition)

    start = (begin.obs, begin.state, memory, jnp.full(num_envs, -1, jnp.int32),
             jnp.zeros(num_envs, jnp.float32), jnp.zeros(num_envs, bool))
    _, (inputs, transitions) = jax.lax.scan(step, start, (jnp.arange(length), begin.per_step))
    return Trial(inputs=inputs, transitions=transitions)


def trial_td_errors(memory_q: MemoryQ, params: Params, target_params: Params, memory: Memory, trial: Trial,
                    gamma: chex.Numeric, td_lambda: chex.Numeric = 0.0) -> chex.Array:
    """The double-Q(λ) TD error at every step of a trial, by backpropagation through it.

    Step t's target is Peng's λ-return `G_t = r_t + γ [(1 − λ) v_{t+1} + λ G_{t+1}]` with
    `v_{t+1} = Q̄_{t+1}(argmax Q_{t+1})` (double Q: the online network picks, the target network
    values), both networks run over the trial from `memory`; λ = 0 is the one-step target
    `r_t + γ v_{t+1}`, λ = 1 the trial's discounted return from t. Episode ends inside the trial
    do not cut it (the next step is the next episode's first, and the memory runs on); the
    trial's last step has no next step: its target is `r_{L-1}`.

    Args:
      memory_q: the network with memory.
      params: online parameters, differentiated (through the whole trial).
      target_params: target-network parameters.
      memory: the memory at the trial's start, for `[M]` environments.
      trial: `[L, M]` from `collect_trial`.
      gamma: discount.
      td_lambda: λ of the targets, in [0, 1].

    Returns:
      `[L, M]` the TD errors.
    """
    q = memory_q.sequence(params, memory, trial.inputs)  # [L, M, A]
    q_target = memory_q.sequence(target_params, memory, trial.inputs)

    def next_step(values):  # step t + 1's values at t; the last slot is never bootstrapped from
        return jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])

    rewards = trial.transitions.reward.astype(q.dtype)
    discount = jnp.full(rewards.shape, gamma, q.dtype).at[-1].set(0.0)
    greedy = jnp.argmax(next_step(q), axis=-1)
    v_next = jnp.take_along_axis(next_step(q_target), greedy[..., None], axis=-1)[..., 0]  # [L, M]
    lambda_returns = jax.vmap(rlax.lambda_returns, in_axes=(1, 1, 1, None), out_axes=1)
    targets = lambda_returns(rewards, discount, v_next, jnp.asarray(td_lambda, q.dtype))
    taken = jnp.take_along_axis(q, trial.transitions.action[..., None], axis=-1)[..., 0]
    return targets - taken


def trial_td_loss(memory_q: MemoryQ, params: Params, target_params: Params, memory: Memory, trial: Trial,
                  gamma: chex.Numeric, td_lambda: chex.Numeric = 0.0) -> chex.Array:
    """The double-Q(λ) TD loss of a whole trial: the mean of `0.5 * error²` of `trial_td_errors`. `[]`.

    Args:
      memory_q: the network with memory.
      params: online parameters, differentiated.
      target_params: target-network parameters.
      memory: the memory at the trial's start.
      trial: `[L, M]` from `collect_trial`.
      gamma: discount.
      td_lambda: λ of the targets, in [0, 1].

    Returns:
      `[]` the loss, differentiable in `params` through the whole trial.
    """
    return 0.5 * jnp.mean(jnp.square(trial_td_errors(memory_q, params, target_params, memory, trial, gamma,
                                                               td_lambda)))


def first_episode(transitions: Transition) -> chex.Array:
    """`[L, M]` bool: the steps of each environment's first episode in a trial.

    Args:
      transitions: `[L, M]`.

    Returns:
      True up to and including each environment's first episode end.
    """
    done = (transitions.terminated | transitions.truncated).astype(jnp.int32)
    return (jnp.cumsum(done, axis=0) - done) == 0


def make_rl2_learner(config: MetaConfig, family: TaskFamily, network: nn.Module,
                     optimizer: optax.GradientTransformation) -> MetaLearner:
    """The memory-kind `MetaLearner`: RL² trained by Q-learning on whole trials.

    Each meta-step draws `num_tasks` training tasks, runs one trial of `trial_episodes` episodes
    on each in `num_envs` environments at ε = `epsilon`, and takes one optimiser step on the mean
    of the tasks' `trial_td_loss` gradients.

    Args:
      config: the settings (an `algo="rl2"` config).
      family: the task family.
      network: a recurrent Q-network (a module with `initial_carry`, e.g. `RecurrentQNetwork`)
        or a causal sequence Q-network `inputs[L, ..., F] -> q[L, ..., A]` with a step cache (e.g.
        `AttentionQNetwork`).
      optimizer: the outer optimiser.

    Returns:
      The `MetaLearner` of kind `"memory"`; its learner state is the recurrent network's carry
      at a trial's start (`{"initial_carry": ...}`), or `()` for a sequence network.
    """
    env, num_envs = family.env, config.num_envs
    length = config.trial_episodes * family.episode_length
    obs, _ = env.reset(jax.random.key(0), family.default_params)
    features = obs.size + env.num_actions + 2
    recurrent = hasattr(network, "initial_carry")
    memory_q = recurrent_memory(network.apply) if recurrent else cached_memory(network, features)

    def init(key: chex.PRNGKey) -> MetaState:
        if recurrent:
            learner_state = {"initial_carry": network.initial_carry(())}
            params = network.init(key, learner_state["initial_carry"], jnp.zeros(features))
        else:
            learner_state = ()
            params = network.init(key, jnp.zeros((length, features)))
        return initial_meta_state(params, optimizer, learner_state)

    def run_trial(params, learner_state, task, key, num_steps, epsilon):
        memory = memory_q.initial_memory(learner_state, num_envs)
        return memory, collect_trial(env, memory_q, params, memory, task, key, num_envs=num_envs,
                                     length=num_steps, epsilon=epsilon)

    def task_grad(params, target_params, learner_state, task, key):
        memory, trial = run_trial(params, learner_state, task, key, length, config.epsilon)

        def loss(theta):
            errors = trial_td_errors(memory_q, theta, target_params, memory, trial, config.gamma,
                                     config.td_lambda)
            return 0.5 * jnp.mean(jnp.square(errors)), errors

        (value, errors), grad = jax.value_and_grad(loss, has_aux=True)(params)
        first = first_episode(trial.transitions)
        returns = rollout.episode_returns(trial.transitions, config.trial_episodes)
        stats = TaskStats(meta_loss=value,
                          support_loss=0.5 * jnp.sum(jnp.where(first, jnp.square(errors), 0.0)) / jnp.sum(first),
                          pre_return=returns[0], post_return=returns[-1])
        return grad, stats

    def trial(state: MetaState, task_params: EnvParams, key: chex.PRNGKey, num_episodes: int) -> chex.Array:
        steps = num_episodes * family.episode_length
        if not recurrent and steps > length:
            raise InputError(f"a trial of {num_episodes} episodes ({steps} steps) is longer than the attention "
                             f"network's {length} steps (trial_episodes = {config.trial_episodes})")
        _, played = run_trial(state.params, state.learner_state, task_params, key, steps, config.eval_epsilon)
        return rollout.episode_returns(played.transitions, num_episodes)

    return MetaLearner(kind="memory", init=init, update=meta_update(config, family, optimizer, task_grad),
                       trial=trial, env_steps_per_update=config.num_tasks * num_envs * length)
