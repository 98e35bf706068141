"""The tabular learner: one inner step is the design note's Q-learning update, applied by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax.algos import make_problem
from metaq_jax.networks import TabularQ
from metaq_jax.tasks import gridworld

ALPHA, GAMMA = 0.5, 0.9


def table_params(table):
    return {"params": {"table": jnp.asarray(table, jnp.float32)}}


def one_hot(i, n=4):
    return jax.nn.one_hot(i, n)


def batch(states, actions, rewards, next_states, terminated):
    n = len(states)
    return mq.Transition(obs=one_hot(jnp.array(states)), action=jnp.array(actions),
                         reward=jnp.array(rewards, jnp.float32), next_obs=one_hot(jnp.array(next_states)),
                         terminated=jnp.array(terminated), truncated=jnp.zeros(n, bool))


def inner_step(table, data):
    net = TabularQ(num_states=4, num_actions=3)
    loss = lambda p, d: mq.td_loss(net.apply, p, p_target, d, GAMMA)  # noqa: E731
    p_target = table_params(table)  # the target is the table before the step, as in the formula
    return np.asarray(mq.adapt(table_params(table), loss, data, steps=1, lr=ALPHA)["params"]["table"])


@pytest.fixture
def table():
    return np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def test_one_step_on_one_transition_is_the_q_learning_update(table):
    got = inner_step(table, batch([1], [2], [0.7], [3], [False]))
    expected = table.copy()
    # Q(s,a) <- Q(s,a) + α [r + γ max_a' Q(s',a') - Q(s,a)]
    expected[1, 2] += ALPHA * (0.7 + GAMMA * table[3].max() - table[1, 2])
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_one_step_on_a_batch_averages_the_updates(table):
    data = batch([0, 2, 0], [1, 0, 1], [1.0, -1.0, 0.5], [2, 2, 3], [False, True, False])
    expected = table.copy()
    deltas = [1.0 + GAMMA * table[2].max() - table[0, 1],
              -1.0 - table[2, 0],  # terminated: no bootstrap
              0.5 + GAMMA * table[3].max() - table[0, 1]]
    for (s, a), d in zip([(0, 1), (2, 0), (0, 1)], deltas):
        expected[s, a] += ALPHA * d / 3
    np.testing.assert_allclose(inner_step(table, data), expected, rtol=1e-6)


def test_tabular_needs_a_tabular_family():
    with pytest.raises(ValueError, match="MetaConfig.network = 'tabular': family cartpole has no tabular form"):
        make_problem(mq.MetaConfig(family="cartpole", network="tabular"))


@pytest.mark.parametrize("family", ["gridworld", "tabular-mdp", "bandit"])
def test_maml_meta_learns_a_q_table_initialisation(family):
    config = mq.MetaConfig(family=family, network="tabular", num_tasks=2, num_envs=2, rollout_length=20,
                           inner_steps=1, gamma=0.9)
    learner = mq.make_meta_learner(config)
    state = learner.init(jax.random.key(0))
    table = state.params["params"]["table"]
    assert not np.any(np.asarray(table))  # tabular Q-learning starts from zeros
    new_state, metrics = jax.jit(learner.update)(state, jax.random.key(1))
    assert np.isfinite(float(metrics.meta_loss))
    assert np.any(np.asarray(new_state.params["params"]["table"]) != 0)


def test_gridworld_goal_fixed_and_test_goals_held_out():
    family = mq.make_family("gridworld")
    test_goals = {tuple(g) for g in np.asarray(family.test_tasks().goal)}
    train_goals = {tuple(g) for g in np.asarray(family.train_tasks(jax.random.key(0), 500).goal)}
    assert test_goals and not test_goals & train_goals and (2, 2) not in train_goals | test_goals
    task = gridworld.EnvParams(goal=jnp.array([1, 2], jnp.int32), max_steps_in_episode=20)
    env = family.env
    obs, state = env.reset(jax.random.key(0), task)
    for episode in range(2):  # up from the centre reaches (1, 2) in one step, in every episode
        obs, state, reward, terminated, _, info = env.step(jax.random.key(0), state, 0, task)
        assert bool(terminated) and float(reward) == 1.0
        np.testing.assert_array_equal(info["final_observation"], one_hot(7, 25))


def test_tabular_mdp_oracle_is_value_iteration_by_hand():
    family = mq.make_family("tabular-mdp", num_states=2, num_actions=2, episode_length=2)
    task = family.env.default_params.replace(
        reward_means=jnp.array([[1.0, 0.0], [0.0, 2.0]]),
        transitions=jnp.array([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]),
        max_steps_in_episode=2)
    # V1 = (1, 2); V2(0) = max(1 + V1(1), 0 + V1(0)) = 3; V2(1) = max(0 + 1, 2 + 2) = 4
    assert float(family.oracle_return(task)) == pytest.approx(3.5)
