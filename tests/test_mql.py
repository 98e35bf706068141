"""Meta-Q-Learning: its replay items and windows (stored once, gathered at sampling), the weighted TD loss, adaptation (θ_meta untouched,
the first episode on θ_meta, later ones adapted), and the update batched == one task at a time; on
continuous actions, MQL over TD3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import assert_compiled_once_and_batched_equal, make_point, trees_equal, updates_by_task_batch
import metaq_jax as mq
from metaq_jax.algos import mql

TINY = dict(family="nav2d", algo="mql", num_tasks=2, num_envs=2, hidden_sizes=(8,), gamma=0.9, task_pool=3,
            batch_size=8, replay_size=500, gradient_steps=2, latent_size=4, history_length=3, adapt_steps=2,
            propensity_samples=16, meta_steps=3, outer_optimizer="sgd", outer_lr=0.1)


def test_windows_hold_the_last_inputs_with_zeros_before_the_first():
    inputs = jnp.arange(1.0, 5.0).reshape(4, 1, 1)  # steps 1..4, one env, one feature
    got = mql.windows(inputs, 3)[:, 0, :, 0]
    np.testing.assert_array_equal(got, [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]])


def test_a_td_batch_shifts_the_window_by_the_next_input():
    items = mq.Transition(obs=jnp.arange(6.0).reshape(1, 3, 2), action=jnp.zeros(1, jnp.int32), reward=jnp.zeros(1),
                          next_obs=jnp.array([[9.0, 8.0]]), terminated=jnp.zeros(1, bool), truncated=jnp.zeros(1, bool))
    np.testing.assert_array_equal(mql.td_batch(items).next_obs[0], [[2, 3], [4, 5], [9, 8]])


def rollout(length, num_envs, features, key):
    """Random inputs `[L, M, F]` and a rollout `[L, M]` whose observations are 2 wide (A = 3)."""
    k_in, k_obs, k_act, k_rew, k_done = jax.random.split(key, 5)
    inputs = jax.random.normal(k_in, (length, num_envs, features))
    transitions = mq.Transition(obs=jnp.zeros((length, num_envs, 2)),
                                action=jax.random.randint(k_act, (length, num_envs), 0, 3),
                                reward=jax.random.normal(k_rew, (length, num_envs)),
                                next_obs=jax.random.normal(k_obs, (length, num_envs, 2)),
                                terminated=jax.random.bernoulli(k_done, 0.2, (length, num_envs)),
                                truncated=jnp.zeros((length, num_envs), bool))
    return inputs, transitions


def test_windows_gathered_from_the_stored_replay_equal_the_windows_at_collection():
    """Three collections into a replay of two: every slot's gathered item is the live collection's
    windowed item (`replay_items`), the first collection overwritten whole by the third."""
    length, num_envs, history, features = 10, 2, 3, 2 + 3 + 2  # test-bandit: episodes of 10 steps
    config = mq.MetaConfig(**{**TINY, "family": "test-bandit", "num_envs": num_envs, "replay_size": 2 * length * num_envs})
    replay = mq.algos.offpolicy.make_replay(config, mq.make_family("test-bandit"))
    example = mql.StoredItem(mq.algos.offpolicy.example_item(jnp.zeros(features)), jnp.zeros((), jnp.int32))
    state, expected = replay.init(example), {}
    for c in range(3):
        inputs, transitions = rollout(length, num_envs, features, jax.random.key(c))
        first = int(state.current_index)
        state = replay.add(state, mql.stored_items(inputs, transitions, 3, state.current_index))
        windowed = mq.algos.offpolicy.flat(mql.replay_items(inputs, transitions, history, 3))
        expected.update({first + i: jax.tree.map(lambda x: x[i], windowed) for i in range(length * num_envs)})
    slots = jnp.arange(2 * length * num_envs)
    stored = jax.tree.map(lambda x: x[0], state.experience)
    np.testing.assert_array_equal(stored.slot, slots)
    gathered = stored.step._replace(obs=mql.gather_windows(stored.step.obs, slots, history, num_envs, length * num_envs))
    for slot in slots.tolist():
        assert trees_equal(jax.tree.map(lambda x: x[slot], gathered), expected[slot])


def test_the_replay_keeps_whole_collections_of_replay_size():
    """nav2d's collections of 100 steps × 2 envs: a replay_size of 500 keeps 400 items, of 400 all 400."""
    family = mq.make_family("nav2d")
    for size in (400, 500):
        config = mq.MetaConfig(**{**TINY, "replay_size": size})
        assert mq.algos.offpolicy.replay_capacity(config, family, whole_collections=True) == 400
        assert mq.algos.offpolicy.replay_capacity(config, family) == size
        state = mq.make_meta_learner(config, family).init(jax.random.key(0))
        assert state.learner_state["replay"].experience.step.obs.shape[:3] == (3, 1, 400)


def stored_window_items(replay, index, count, history, num_envs, collection):
    """Pool task `index`'s first `count` replay items with their windows: `Transition [count]`."""
    stored = jax.tree.map(lambda x: x[index, 0, :count], replay.experience)
    return stored.step._replace(obs=mql.gather_windows(replay.experience.step.obs[index, 0], stored.slot, history,
                                                       num_envs, collection))


@pytest.fixture(scope="module")
def learner_run():
    config = mq.MetaConfig(**TINY)
    return config, updates_by_task_batch(config, (1, 2))


def test_the_learner_compiles_once_and_batched_tasks_equal_one_at_a_time(learner_run):
    config, out = learner_run
    assert_compiled_once_and_batched_equal(out, 2)


@pytest.fixture(scope="module")
def adaptation(learner_run):
    """One agent's new data and replay samples, from the trained learner's pool."""
    config, out = learner_run
    state = out[1][1]
    network = mq.algos.default_network(config, mq.make_family(config.family))
    replay = state.learner_state["replay"]
    old = stored_window_items(replay, 0, 16, config.history_length, config.num_envs, 200)
    new = stored_window_items(replay, 1, 12, config.history_length, config.num_envs, 200)
    return config, network, state.params, new, old


def test_the_weighted_td_loss_is_the_plain_one_at_beta_one(adaptation):
    config, network, params, new, _ = adaptation
    plain = mql.mql_td_loss(params, params, new, network=network, gamma=0.9)
    weighted = mql.mql_td_loss(params, params, new, jnp.ones(12), network=network, gamma=0.9)
    np.testing.assert_allclose(weighted, plain, rtol=1e-6)
    halves = mql.mql_td_loss(params, params, new, jnp.ones(12).at[6:].set(0.0), network=network, gamma=0.9)
    first_half = mql.mql_td_loss(params, params, jax.tree.map(lambda x: x[:6], new), network=network, gamma=0.9)
    np.testing.assert_allclose(halves, first_half, rtol=1e-6)


def test_adaptation_moves_a_copy_and_leaves_theta_meta_untouched(adaptation):
    config, network, params, new, old = adaptation
    before = jax.tree.map(np.array, params)
    adapted = jax.jit(lambda p: mql.adapt(network, config, p, new, jnp.ones(12), old, jnp.ones(16)))(params)
    assert trees_equal(params, before)
    assert not trees_equal(adapted, params)
    assert jax.tree.structure(adapted) == jax.tree.structure(params)
    none = mql.adapt(network, config.replace(adapt_steps=0), params, new, jnp.ones(12), old, jnp.ones(16))
    assert trees_equal(none, params)


def test_the_trial_acts_on_theta_meta_first_then_on_the_adapted_parameters(learner_run):
    config, out = learner_run
    family = mq.make_family(config.family)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    state = out[1][1]

    def trial(adapt_lr, key):
        learner = mq.make_meta_learner(config.replace(adapt_lr=adapt_lr))
        return np.asarray(jax.jit(lambda k: learner.trial(state, task, k, 3))(key))

    returns = np.stack([trial(1e-3, jax.random.key(k)) for k in range(4)])
    faster = np.stack([trial(0.3, jax.random.key(k)) for k in range(4)])
    assert returns.shape == (4, 3) and np.isfinite(returns).all()
    np.testing.assert_array_equal(returns[:, 0], faster[:, 0])  # episode 1: θ_meta whatever the adaptation
    assert np.any(returns[:, 1:] != faster[:, 1:])


def test_the_support_protocol_acts_on_theta_meta_then_on_theta_adapted_on_the_support_batch(learner_run):
    """MAML's protocol for mql: point 0 is θ_meta whatever the adaptation; point 1 plays the same
    episode's keys with θ adapted on the support batch, so with Adam steps too small to move a
    float32 weight (lr 1e-30) it is point 0 exactly, and with real ones it moves."""
    config, out = learner_run
    family = mq.make_family(config.family)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    state = out[1][1]

    def support(adapt_lr, key):
        learner = mq.make_meta_learner(config.replace(adapt_lr=adapt_lr, support_epsilon=0.5))
        return np.asarray(jax.jit(lambda k: learner.support(state, task, k))(key))

    still = np.stack([support(1e-30, jax.random.key(k)) for k in range(4)])
    moved = np.stack([support(0.3, jax.random.key(k)) for k in range(4)])
    assert still.shape == (4, 2) and np.isfinite(moved).all()
    np.testing.assert_array_equal(still[:, 1], still[:, 0])
    np.testing.assert_array_equal(moved[:, 0], still[:, 0])
    assert np.any(moved[:, 1] != moved[:, 0])


def test_a_replay_that_cannot_hold_one_collection_is_refused():
    with pytest.raises(ValueError) as error:
        mq.make_meta_learner(mq.MetaConfig(**{**TINY, "replay_size": 150}))
    assert str(error.value) == ("MetaConfig.replay_size = 150: must hold one collection, 100 steps (nav2d's episode) "
                                "× num_envs 2 = 200 transitions")


@pytest.fixture(scope="module")
def point_run():
    """MQL over TD3 on the continuous test-point family: two meta-steps."""
    config = mq.MetaConfig(**{**TINY, "family": "test-point", "replay_size": 64})
    family = make_point(num_test_tasks=2)
    learner = mq.make_meta_learner(config, family)
    first = learner.init(jax.random.key(0))
    update = jax.jit(learner.update)
    state, _ = update(first, jax.random.key(1))
    state, metrics = update(state, jax.random.key(2))
    return config, family, learner, first, state, metrics


def test_on_continuous_actions_mql_is_td3_over_windows_and_a_meta_step_moves_both_parts(point_run):
    _, family, learner, first, state, metrics = point_run
    assert set(state.params) == {"actor", "critic"} and set(state.params["actor"]) == {"encoder", "head"}
    assert np.isfinite(float(metrics.meta_loss)) and float(metrics.grad_norm) > 0
    for part in ("actor", "critic"):
        assert not trees_equal(state.params[part], first.params[part])
    stored = state.learner_state["replay"].experience.step
    assert stored.action.shape[-1] == 1 and stored.obs.shape[-1] == 1 + 1 + 2  # an input [O + A + 2], stored once
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    returns = jax.jit(lambda s, k: learner.trial(s, task, k, 3))(state, jax.random.key(3))
    assert returns.shape == (3,) and np.all(np.isfinite(returns))


def test_continuous_replay_items_carry_the_action_as_it_is_into_the_next_input():
    transitions = mq.Transition(obs=jnp.zeros((2, 1, 1)), action=jnp.array([[[0.25]], [[-0.5]]]),
                                reward=jnp.array([[1.0], [2.0]]), next_obs=jnp.array([[[0.1]], [[0.2]]]),
                                terminated=jnp.zeros((2, 1), bool), truncated=jnp.array([[False], [True]]))
    inputs = mq.algos.recurrent_td3.trial_inputs(transitions)
    items = mql.replay_items(inputs, transitions, 2, None)
    np.testing.assert_allclose(items.next_obs[:, 0], [[0.1, 0.25, 1.0, 0.0], [0.2, -0.5, 2.0, 1.0]])
    np.testing.assert_allclose(items.obs[1, 0], [[0.0, 0.0, 0.0, 0.0], [0.0, 0.25, 1.0, 0.0]])


def test_td3_adaptation_moves_a_copy_along_each_parts_loss(point_run):
    config, family, _, _, state, _ = point_run
    learner = mql.td3_window_learner(config, family)
    replay, collection = state.learner_state["replay"], family.episode_length * config.num_envs
    old = stored_window_items(replay, 0, 8, config.history_length, config.num_envs, collection)
    new = stored_window_items(replay, 1, 6, config.history_length, config.num_envs, collection)
    adapted = jax.jit(lambda p: learner.adapt(p, new, jnp.ones(6), old, jnp.ones(8), jax.random.key(4)))(state.params)
    for part in ("actor", "critic"):
        assert not trees_equal(adapted[part], state.params[part])
    still = mql.td3_window_learner(config.replace(adapt_steps=0), family)
    assert trees_equal(still.adapt(state.params, new, jnp.ones(6), old, jnp.ones(8), jax.random.key(4)), state.params)
