"""RL² over TD3 on a continuous-action family: the inputs it learns from are those it acted on,
the trial's TD3 targets by hand (across episode ends, cut at the trial's end, λ), the actor's
gradient, and one meta-step and a trial."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import metaq_jax as mq
from metaq_jax import rollout, td3
from metaq_jax.algos import recurrent_td3 as R
from metaq_jax.networks import RecurrentEncoder

from helpers import make_point

CONFIG = mq.MetaConfig(family="test-point", algo="rl2", num_tasks=2, num_envs=2, trial_episodes=2,
                       hidden_sizes=(8,), cell_size=8, gamma=0.9, target_update_period=2)
FAMILY = make_point(num_test_tasks=2)
TASK = jax.tree.map(lambda x: x[0], FAMILY.test_tasks(1))
NET = R.RecurrentTD3(RecurrentEncoder(8, "gru", (8,)), td3.Actor(1, (8,)), td3.TwinCritic((8,)),
                     td3.TD3(td3.Actor(1, (8,)).apply, td3.TwinCritic((8,)).apply, gamma=0.9))


@functools.cache
def learner():
    return mq.make_meta_learner(CONFIG, FAMILY)


@functools.cache
def state():
    return learner().init(jax.random.key(0))


def greedy_trial(key=jax.random.key(1), length=12):
    """A trial of two 6-step episodes, the actor's own actions, and the memory at its start."""
    s = state()
    carry = jnp.broadcast_to(s.learner_state["initial_carry"], (2, 8))
    transitions = rollout.collect_actions_with_memory(
        FAMILY.env, lambda p, c, o, prev: R.act(NET, p, c, o, prev), s.params["actor"], carry, TASK, key,
        num_envs=2, length=length, epsilon=0.0, noise=0.0)
    return s.params, carry, transitions


def test_a_continuous_family_with_rl2_gets_the_recurrent_td3_learner():
    assert learner().kind == "memory"
    assert set(state().params) == {"actor", "critic"} and set(state().params["actor"]) == {"encoder", "head"}


def test_learning_reads_the_inputs_the_actor_acted_on_across_the_episode_end():
    params, carry, transitions = greedy_trial()
    assert bool(transitions.truncated[5].all()) and not bool(transitions.truncated[6].any())  # an episode ends
    xs = R.trial_inputs(transitions)
    np.testing.assert_allclose(xs[6, :, -1], 1.0)  # step 6 reads the done flag of step 5
    np.testing.assert_allclose(xs[6, :, 1:2], transitions.action[5])  # and its action
    replayed = NET.actor.apply(params["actor"]["head"], R.features(NET, params["actor"]["encoder"], carry, xs))
    np.testing.assert_allclose(replayed, transitions.action, rtol=1e-5, atol=1e-6)
    # the memory runs on: step 6 acts on what steps 0..5 left, not on a fresh carry
    fresh = NET.actor.apply(params["actor"]["head"], R.features(NET, params["actor"]["encoder"], carry, xs[6:]))
    assert not np.allclose(fresh[0], transitions.action[6], atol=1e-4)


@pytest.mark.parametrize("td_lambda", [0.0, 1.0])
def test_trial_targets_by_hand(td_lambda):
    """G_t = r_t + γ min Q̄(x̄_{t+1}, ã_{t+1}) (λ = 0) or the discounted trial return (λ = 1), never
    cut at the episode end inside the trial, G_{L−1} = r_{L−1}."""
    params, carry, transitions = greedy_trial()
    xs = R.trial_inputs(transitions)
    key = jax.random.key(7)
    got = np.asarray(R.trial_critic_targets(NET, params, carry, xs, transitions.reward, key, td_lambda))
    actor_x = np.asarray(R.features(NET, params["actor"]["encoder"], carry, xs))
    critic_x = np.asarray(R.features(NET, params["critic"]["encoder"], carry, xs))
    smoothed = np.asarray(td3.smoothed_target_actions(NET.td3, params["actor"]["head"], actor_x, key))
    v = np.asarray(jnp.min(NET.critic.apply(params["critic"]["head"], critic_x, smoothed), axis=-1), np.float64)
    r = np.asarray(transitions.reward, np.float64)
    want = np.zeros_like(r)
    for t in reversed(range(12)):
        if t == 11:
            want[t] = r[t]
        elif td_lambda == 0.0:
            want[t] = r[t] + 0.9 * v[t + 1]
        else:
            want[t] = r[t] + 0.9 * want[t + 1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_actor_gradient_matches_finite_differences_and_leaves_the_critics_alone():
    """Along a random direction of all the actor's parameters (encoder through time, and head), in float64."""
    params, carry, transitions = greedy_trial()
    xs = R.trial_inputs(transitions)
    with jax.enable_x64(True):
        # biases moved off zero: the trial's first input is all zeros, a ReLU kink at zero-initialised biases
        leaves, tree = jax.tree.flatten(params)
        noise = jax.random.split(jax.random.key(6), len(leaves))
        params64 = jax.tree.unflatten(tree, [jnp.asarray(x, jnp.float64) + 0.1 * jax.random.normal(k, x.shape)
                                             for x, k in zip(leaves, noise)])
        carry64, xs64 = carry.astype(jnp.float64), xs.astype(jnp.float64)
        flat, unravel = ravel_pytree(params64["actor"])
        direction = jax.random.normal(jax.random.key(5), flat.shape, jnp.float64)
        loss = lambda a: R.trial_actor_loss(NET, a, params64["critic"], carry64, xs64)  # noqa: E731
        grad = ravel_pytree(jax.grad(loss)(params64["actor"]))[0]
        fd = (loss(unravel(flat + 1e-6 * direction)) - loss(unravel(flat - 1e-6 * direction))) / 2e-6
        assert float(grad @ direction) == pytest.approx(float(fd), rel=1e-6)
        critic_grad = jax.grad(lambda c: R.trial_actor_loss(NET, params64["actor"], c, carry64, xs64))(
            params64["critic"])
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(critic_grad))


def test_one_meta_step_moves_both_parts_and_a_trial_returns_each_episode():
    ml = learner()
    after, metrics = jax.jit(ml.update)(state(), jax.random.key(2))
    assert np.isfinite(float(metrics.meta_loss)) and float(metrics.grad_norm) > 0
    for part in ("actor", "critic"):
        assert all(np.any(np.asarray(a) != np.asarray(b)) for a, b in
                   zip(jax.tree.leaves(after.params[part]), jax.tree.leaves(state().params[part])))
    returns = jax.jit(lambda s, k: ml.trial(s, TASK, k, 3))(after, jax.random.key(3))
    assert returns.shape == (3,) and np.all(np.isfinite(returns))


def test_rl2_attention_is_refused_on_continuous_actions():
    with pytest.raises(mq.InputError, match="MetaConfig.network = 'attention': not available on family test-point"):
        mq.make_meta_learner(mq.MetaConfig(family="test-point", algo="rl2", network="attention", cell="gru"), FAMILY)
