"""PEARL's latent-conditioned double DQN: its TD loss against a hand computation with z fixed in
the target, its update (batched == one task at a time, the pool's replay and context filled, the
training split only), and its trial's posterior sampling; on continuous actions, PEARL over TD3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import assert_compiled_once_and_batched_equal, make_point, updates_by_task_batch
import metaq_jax as mq
from metaq_jax.algos import pearl
from metaq_jax.networks import LatentQNetwork

TINY = dict(family="gridworld", algo="pearl", num_tasks=2, num_envs=2, hidden_sizes=(8,), gamma=0.9, task_pool=3,
            batch_size=8, context_size=4, replay_size=128, gradient_steps=2, latent_size=2, meta_steps=3,
            outer_optimizer="sgd", outer_lr=0.1)  # Adam would magnify rounding


def test_latent_td_loss_is_double_dqn_with_z_fixed_in_the_target():
    net = LatentQNetwork(3, (5,))
    params = net.init(jax.random.key(0), jnp.zeros(2), jnp.zeros(2))
    target = net.init(jax.random.key(1), jnp.zeros(2), jnp.zeros(2))
    k = jax.random.split(jax.random.key(2), 3)
    batch = mq.Transition(obs=jax.random.normal(k[0], (4, 2)), action=jnp.array([0, 2, 1, 2]),
                          reward=jnp.array([1.0, -0.5, 0.25, 2.0]), next_obs=jax.random.normal(k[1], (4, 2)),
                          terminated=jnp.array([False, True, False, False]), truncated=jnp.zeros(4, bool))
    z = jax.random.normal(k[2], (2,))

    def by_hand(z, fixed_z):
        q = np.asarray(net.apply(params, batch.obs, z))
        pick = np.argmax(np.asarray(net.apply(params, batch.next_obs, fixed_z)), axis=-1)
        value = np.asarray(net.apply(target, batch.next_obs, fixed_z))[np.arange(4), pick]
        targets = np.asarray(batch.reward) + 0.9 * (1 - np.asarray(batch.terminated)) * value
        return targets, q

    targets, q = by_hand(z, z)
    expected = 0.5 * np.mean((targets - q[np.arange(4), np.asarray(batch.action)]) ** 2)
    np.testing.assert_allclose(pearl.latent_td_loss(net.apply, params, target, z, batch, 0.9), expected, rtol=1e-6)

    # z reaches the loss through the online values alone: the gradient of the loss with the targets
    # held as constants
    def online_only(z):
        chosen = jnp.take_along_axis(net.apply(params, batch.obs, z), batch.action[:, None], axis=-1)[:, 0]
        return 0.5 * jnp.mean(jnp.square(jnp.asarray(targets) - chosen))

    np.testing.assert_allclose(jax.grad(lambda z: pearl.latent_td_loss(net.apply, params, target, z, batch, 0.9))(z),
                               jax.grad(online_only)(z), rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def learner_run():
    """Three updates of the pearl learner, jitted once, with tasks one at a time and all at once."""
    config = mq.MetaConfig(**TINY)
    return config, updates_by_task_batch(config, (1, 2))


def test_the_learner_compiles_once_and_batched_tasks_equal_one_at_a_time(learner_run):
    config, out = learner_run
    assert_compiled_once_and_batched_equal(out, 2)
    assert set(out[1][1].params) == {"q", "encoder"}


def test_each_collection_fills_its_tasks_replay_and_recent_context(learner_run):
    config, out = learner_run
    state = out[1][1]
    family = mq.make_family(config.family)
    per_collection = family.episode_length * config.num_envs
    collected = np.asarray(state.learner_state["has_context"])
    replay = state.learner_state["replay"]
    filled = np.where(np.asarray(replay.is_full), config.replay_size, np.asarray(replay.current_index))
    assert 2 <= collected.sum() <= config.task_pool  # 3 meta-steps of 2 of the 3 pool tasks
    assert np.all(filled[~collected] == 0)
    assert np.all(filled[collected] % per_collection == 0) and filled.sum() == 3 * 2 * per_collection
    context = state.learner_state["context"]
    assert np.all(np.asarray(context.reward)[~collected] == 0)
    # the recent context holds real transitions: actions in range, observations of the family
    assert np.all((np.asarray(context.action)[collected] >= 0)
                  & (np.asarray(context.action)[collected] < family.num_actions))


def test_the_pool_holds_training_tasks_only(learner_run):
    config, out = learner_run
    family = mq.make_family(config.family)

    def rows(tasks):  # one vector per task, of every field of its EnvParams
        return np.concatenate([np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in jax.tree.leaves(tasks)], 1)

    pool, held_out = rows(out[1][1].learner_state["tasks"]), rows(family.test_tasks())
    assert pool.shape[0] == config.task_pool
    for row in pool:
        assert not np.any(np.all(held_out == row, axis=1)), row


def test_the_trial_acts_on_the_prior_first_then_on_the_posterior(learner_run):
    """Episode 1 draws z from the prior, so the encoder cannot change it; later episodes draw from
    the posterior of the trial so far, so they depend on the encoder."""
    config, out = learner_run
    learner, state = out[1][0], out[1][1]
    family = mq.make_family(config.family)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    trial = jax.jit(lambda s, k: learner.trial(s, task, k, 3))
    returns = trial(state, jax.random.key(7))
    assert returns.shape == (3,) and np.isfinite(returns).all()
    scrambled = state._replace(params={**state.params, "encoder": jax.tree.map(
        lambda x: 1e3 * jax.random.normal(jax.random.key(1), x.shape), state.params["encoder"])})
    changed = np.stack([trial(scrambled, jax.random.key(k)) - trial(state, jax.random.key(k)) for k in range(8)])
    assert np.all(changed[:, 0] == 0)
    assert np.any(changed[:, 1:] != 0)


def test_the_support_protocol_acts_on_the_prior_then_on_the_posterior_of_the_whole_support_batch(learner_run):
    """MAML's protocol for pearl: point 0 is an episode on z from the prior, which the encoder
    cannot change; point 1 is the same episode's keys on z from the posterior of the support batch,
    every environment's transitions together, as computed here by hand."""
    config, out = learner_run
    learner, state = out[1][0], out[1][1]
    family = mq.make_family(config.family)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    support = jax.jit(lambda s, k: learner.support(s, task, k))
    key = jax.random.key(3)
    returns = support(state, key)
    assert returns.shape == (2,) and np.isfinite(returns).all()
    # by hand, from the pieces the learner is made of
    q = pearl.dqn_learner(config, family, LatentQNetwork(family.num_actions, config.hidden_sizes))
    encoder = pearl.latent.ContextEncoder(config.latent_size, config.hidden_sizes)
    k_prior, k_support, k_posterior, k_eval = jax.random.split(key, 4)
    shape = (config.num_envs, config.latent_size)
    prior = pearl.latent.sample_latent(k_prior, jnp.zeros(shape), jnp.ones(shape))
    data = q.collect(state.params, prior, task, k_support, config.support_epsilon)
    flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)
    flat = flat._replace(obs=flat.obs.reshape(len(flat.reward), -1), next_obs=flat.next_obs.reshape(len(flat.reward), -1))
    mean, variance = pearl.latent.posterior(encoder, state.params["encoder"],
                                            pearl.latent.context_features(flat, family.num_actions),
                                            pearl.first_episode(data).reshape(-1))
    z = pearl.latent.sample_latent(k_posterior, jnp.broadcast_to(mean, shape), jnp.broadcast_to(variance, shape))
    by_hand = [mq.rollout.episode_returns(q.collect(state.params, zs, task, k_eval, config.eval_epsilon), 1)[0]
               for zs in (prior, z)]
    np.testing.assert_allclose(returns, by_hand, rtol=1e-6)
    scrambled = state._replace(params={**state.params, "encoder": jax.tree.map(
        lambda x: 1e3 * jax.random.normal(jax.random.key(1), x.shape), state.params["encoder"])})
    changed = np.stack([support(scrambled, jax.random.key(k)) - support(state, jax.random.key(k)) for k in range(8)])
    assert np.all(changed[:, 0] == 0) and np.any(changed[:, 1] != 0)


def test_the_replay_memory_metaq_bench_reports_is_the_pool_times_the_capacity(learner_run):
    from metaq_jax.bench.suite import tree_bytes
    config, out = learner_run
    family = mq.make_family(config.family)
    obs, _ = family.env.reset(jax.random.key(0), family.default_params)
    item = 2 * obs.size * obs.dtype.itemsize + 4 + 4 + 1 + 1  # obs, next_obs, action, reward, two flags
    replay = out[1][1].learner_state["replay"]
    assert tree_bytes(replay) == config.task_pool * (config.replay_size * item + 4 + 1)  # + index, is_full


POINT = dict(TINY, family="test-point", batch_size=8, replay_size=64)


@pytest.fixture(scope="module")
def point_learner():
    family = make_point(num_test_tasks=2)
    config = mq.MetaConfig(**POINT)
    return config, family, mq.make_meta_learner(config, family)


def test_on_continuous_actions_pearl_is_td3_and_a_meta_step_moves_actor_critics_and_encoder(point_learner):
    _, family, learner = point_learner
    state = learner.init(jax.random.key(0))
    assert set(state.params) == {"actor", "critic", "encoder"}
    update = jax.jit(learner.update)
    after, metrics = update(*update(state, jax.random.key(1))[:1], jax.random.key(2))
    assert np.isfinite(float(metrics.meta_loss)) and float(metrics.grad_norm) > 0
    for part in ("actor", "critic", "encoder"):
        assert all(np.any(np.asarray(a) != np.asarray(b)) for a, b in
                   zip(jax.tree.leaves(after.params[part]), jax.tree.leaves(state.params[part])))
    assert after.learner_state["replay"].experience.action.shape[-1] == 1  # continuous actions replayed as they are
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    returns = jax.jit(lambda s, k: learner.trial(s, task, k, 3))(after, jax.random.key(3))
    assert returns.shape == (3,) and np.all(np.isfinite(returns))


def test_td3_under_pearl_the_encoder_learns_from_the_critics_and_the_actor_from_its_own_loss(point_learner):
    config, family, _ = point_learner
    cond = pearl.td3_learner(config, family)
    params = cond.init(jax.random.key(0), jnp.zeros(1), jnp.zeros(2))
    k = jax.random.split(jax.random.key(1), 4)
    batch = mq.Transition(obs=jax.random.normal(k[0], (6, 1)), action=jax.random.uniform(k[1], (6, 1), minval=-1),
                          reward=jax.random.normal(k[2], (6,)), next_obs=jax.random.normal(k[3], (6, 1)),
                          terminated=jnp.zeros(6, bool), truncated=jnp.zeros(6, bool))
    z = jnp.array([0.3, -0.7])
    by_td = jax.grad(cond.td_loss)(params, params, z, batch, jax.random.key(2))
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(by_td["actor"]))  # the actor only in the target
    dz = jax.grad(lambda z: cond.td_loss(params, params, z, batch, jax.random.key(2)))(z)
    assert np.all(np.abs(np.asarray(dz)) > 0)  # the encoder's z gets the critics' gradient
    own = cond.own_grads(params, params, z, batch, jax.random.key(2))
    assert set(own) == {"actor"}
    x = jnp.concatenate([batch.obs, jnp.broadcast_to(z, (6, 2))], axis=-1)
    actor, critic = mq.td3.Actor(1, (8,)), mq.td3.TwinCritic((8,))
    want = jax.grad(lambda a: -jnp.mean(critic.apply(params["critic"], x, actor.apply(a, x))[..., 0]))(params["actor"])
    for g, w in zip(jax.tree.leaves(own["actor"]), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)


def test_continuous_context_features_keep_the_action_as_it_is():
    batch = mq.Transition(obs=jnp.ones((2, 3)), action=jnp.array([[0.5, -0.25], [1.0, 0.0]]),
                          reward=jnp.array([2.0, 3.0]), next_obs=jnp.zeros((2, 3)), terminated=jnp.zeros(2, bool), truncated=jnp.zeros(2, bool))
    features = mq.latent.context_features(batch, None)
    np.testing.assert_allclose(features[:, 3:5], batch.action)
    assert features.shape == (2, 3 + 2 + 1 + 3)
