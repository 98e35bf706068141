"""ε-greedy collection: shapes, greedy and uniform actions, pre-reset bootstrap observations."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import rollout
from metaq_jax.tasks import nav2d


def const_q(q):
    """An `apply_fn` ignoring its params: the same values for every observation."""
    return lambda params, obs: jnp.broadcast_to(q, obs.shape[:-1] + q.shape)


@pytest.fixture(scope="module")
def nav():
    family = mq.make_family("nav2d")
    return family, nav2d.EnvParams(goal=jnp.array([-0.35, 0.45]), max_steps_in_episode=5)


def test_shapes_and_greedy_actions(nav):
    family, task = nav
    q = jnp.arange(9.0)
    data = mq.collect(family.env, const_q(q), None, task, jax.random.key(0), num_envs=3, length=7,
                      epsilon=0.0)
    assert data.obs.shape == (7, 3, 2) and data.action.shape == (7, 3) and data.reward.shape == (7, 3)
    assert bool(jnp.all(data.action == 8))


def test_uniform_actions_when_epsilon_is_one(nav):
    family, task = nav
    data = mq.collect(family.env, const_q(jnp.arange(9.0)), None, task, jax.random.key(0),
                      num_envs=50, length=40, epsilon=1.0)
    counts = np.bincount(np.asarray(data.action).ravel(), minlength=9) / data.action.size
    np.testing.assert_allclose(counts, 1 / 9, atol=0.02)


def test_next_obs_is_the_pre_reset_observation(nav):
    family, task = nav
    # always move up-right: the 5-step episodes truncate, the env resets to the origin
    q = jnp.zeros(9).at[2].set(1.0)
    data = mq.collect(family.env, const_q(q), None, task, jax.random.key(0), num_envs=1, length=6,
                      epsilon=0.0)
    np.testing.assert_allclose(data.next_obs[4, 0], [0.5, 0.5], atol=1e-6)  # final, not reset
    np.testing.assert_allclose(data.obs[5, 0], [0.0, 0.0])  # the next step starts from the reset
    assert bool(data.truncated[4, 0]) and not bool(data.terminated[4, 0])


def test_episode_return_counts_episodes_begun():
    false = jnp.zeros((4, 2), bool)
    data = mq.Transition(obs=None, action=None, reward=jnp.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]]),
                         next_obs=None, terminated=false.at[1, 0].set(True),
                         truncated=false.at[3, 1].set(True))
    # env 0: an episode of 3, then one still running with 7: (3 + 7) / 2; env 1: one episode of 4
    assert float(mq.episode_return(data)) == pytest.approx((10 / 2 + 4) / 2)


def test_epsilon_greedy_breaks_no_rank_rules():
    with pytest.raises(AssertionError):
        mq.epsilon_greedy(jax.random.key(0), jnp.zeros(()), 0.1)


def test_epsilon_greedy_is_batched():
    q = jnp.zeros((4000, 3)).at[:, 1].set(1.0)
    actions = np.asarray(mq.epsilon_greedy(jax.random.key(0), q, 0.3))
    # greedy 70% of the time, plus a third of the 30% uniform draws
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / actions.size, [0.1, 0.8, 0.1], atol=0.03)


def test_step_with_reset_is_gymnax_step(nav):
    """Our batched auto-reset gives gymnax's `step` transition, resets included (nav2d resets to 0)."""
    family, task = nav
    env, num_envs = family.env, 3
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), num_envs), task)
    ours, theirs, resets = (obs, state), (obs, state), 0
    for t in range(12):
        actions = jax.random.randint(jax.random.key(t), (num_envs,), 0, 9)
        keys = jax.random.split(jax.random.key(100 + t), num_envs)
        step_keys, reset_keys = jax.vmap(jax.random.split, out_axes=1)(keys)  # as gymnax's step splits
        got = rollout.step_with_reset(env, step_keys, reset_keys, ours[1], actions, task)
        want = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, theirs[1], actions, task)
        for g, w in zip(got[:5], want[:5]):
            jax.tree.map(np.testing.assert_array_equal, g, w)
        np.testing.assert_array_equal(got[5], want[5]["final_observation"])
        ours, theirs, resets = got[:2], want[:2], resets + int(jnp.sum(want[4]))
    assert resets == 2 * num_envs  # the 5-step episodes were truncated and reset on the way


@pytest.fixture(scope="module")
def tipping_cartpoles():
    """A CartPole task with 24 envs whose poles start tilted 0.1-0.3 rad: those past the 0.21 rad
    limit end at the first step, the rest within a few, and the resets draw random states."""
    family = mq.make_family("cartpole")
    task = family.default_params
    _, state = jax.vmap(family.env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), 24), task)
    return family.env, task, state.replace(theta=jnp.linspace(0.1, 0.3, 24))


@pytest.mark.parametrize("max_few", [1, 24])
def test_step_with_reset_resets_the_done_envs_with_their_own_keys(tipping_cartpoles, max_few):
    """Whichever path a step takes (at most `max_few` done: gathered; more: every env drawn),
    each done env gets `reset_env(reset_keys[i])` and the others their stepped state; batched
    over tasks (where the cond becomes a select) the same."""
    env, task, state = tipping_cartpoles
    step = jax.jit(functools.partial(rollout.step_with_reset, env, max_few=max_few))  # jitted physics
    batched = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, 0, None)))  # may round in the last bit
    close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7)
    done_counts = []
    for t in range(8):
        step_keys, reset_keys = jax.random.split(jax.random.key(t), (2, 24))
        actions = jax.random.randint(jax.random.key(100 + t), (24,), 0, 2)
        obs, next_state, _, terminated, truncated, final_obs = step(step_keys, reset_keys, state, actions, task)
        stepped_obs, stepped = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(step_keys, state, actions, task)[:2]
        reset_obs, reset = jax.vmap(env.reset_env, in_axes=(0, None))(reset_keys, task)
        done = np.asarray(terminated | truncated)
        close(obs, np.where(done[:, None], reset_obs, stepped_obs))
        close(final_obs, stepped_obs)
        close(next_state.theta, np.where(done, reset.theta, stepped.theta))
        twice = jax.tree.map(lambda x: jnp.stack([x, x]), (step_keys, reset_keys, state, actions))
        jax.tree.map(lambda b, one: close(b[1], one), batched(*twice, task)[:2], (obs, next_state))
        state, done_counts = next_state, done_counts + [int(done.sum())]
    assert max(done_counts) > 3 and 1 in done_counts  # both paths reset some env where max_few < 24
