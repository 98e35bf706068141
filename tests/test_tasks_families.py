"""The added task families: tasks stay fixed across episodes, dynamics, validation, one meta-step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control import pendulum

import metaq_jax as mq
from metaq_jax.tasks import classic_control

from helpers import FAST_COMPILE, assert_trees_close, trees_equal

NEW_FAMILIES = ["bandit-gaussian", "acrobot", "mountaincar", "pendulum", "tabular-mdp", "metamaze",
                "pointrobot", "asterix", "recsys"]


def first_test_task(family, **changes):
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    return task.replace(**changes)


@functools.partial(jax.jit, static_argnums=(0, 3))
def roll(env, task, key, steps):
    """`steps` auto-resetting steps of cyclic actions: (state before, state after, step outputs)."""
    def step(carry, t):
        state, key = carry
        key, k = jax.random.split(key)
        _, after, reward, terminated, truncated, _ = env.step(k, state, t % env.num_actions, task)
        return (after, key), (state, after, t % env.num_actions, reward, terminated | truncated, k)

    k_reset, key = jax.random.split(key)
    _, state = env.reset(k_reset, task)
    _, out = jax.lax.scan(step, (state, key), jnp.arange(steps))
    return out


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_one_meta_step_has_a_finite_loss(name):
    family = mq.make_family(name)
    config = mq.MetaConfig(family=name, num_tasks=2, num_envs=2, rollout_length=12, inner_steps=1,
                           hidden_sizes=(8,))
    learner = mq.make_meta_learner(config, family)
    state = learner.init(jax.random.key(0))
    update = jax.jit(learner.update).lower(state, jax.random.key(1)).compile(FAST_COMPILE)
    _, metrics = update(state, jax.random.key(1))
    assert np.isfinite(float(metrics.meta_loss))


@pytest.mark.parametrize("name, fields", [
    ("metamaze", [("goal", "goal")]),
    ("pointrobot", [("goal", "goal")]),
    ("asterix", [("spawn_speed", "init_spawn_speed"), ("move_speed", "init_move_interval")]),
])
def test_task_in_the_state_stays_the_params_across_episodes(name, fields):
    """gymnax draws these anew at every reset; here every state, after any reset, holds the task's."""
    family = mq.make_family(name)
    task = first_test_task(family, max_steps_in_episode=20)
    _, after, _, _, done, _ = roll(family.env, task, jax.random.key(0), 70)
    assert int(done.sum()) >= 3  # several auto-resets happened
    for in_state, in_params in fields:
        value = getattr(after, in_state)
        np.testing.assert_array_equal(value, np.broadcast_to(getattr(task, in_params), value.shape))


@pytest.mark.parametrize("name", ["acrobot", "mountaincar", "pendulum"])
def test_physics_stay_the_tasks_after_reset(name):
    """Every transition, in every episode, is the task's physics and not the default one."""
    family = mq.make_family(name)
    env, task = family.env, first_test_task(family, max_steps_in_episode=15)
    before, after, action, _, done, keys = roll(env, task, jax.random.key(0), 40)
    assert int(done.sum()) >= 2
    t = 35  # in the third episode
    at = lambda tree: jax.tree.map(lambda x: x[t], tree)  # noqa: E731
    key_step = jax.random.split(keys[t])[0]  # the key env.step hands to step_env
    replay = lambda params: env.step_env(key_step, at(before), action[t], params)[1]  # noqa: E731
    mine, default = replay(task), replay(env.default_params.replace(max_steps_in_episode=15))
    assert_trees_close(mine, at(after))
    assert not trees_equal(mine, default)


def test_recsys_preference_drifts_within_an_episode_and_restarts_from_the_task():
    family = mq.make_family("recsys", episode_length=10)
    task = first_test_task(family)
    _, after, _, _, done, _ = roll(family.env, task, jax.random.key(0), 30)
    assert [int(i) for i in np.flatnonzero(done)] == [9, 19, 29]
    for t in (9, 19):  # the state after a boundary starts again from the task's preference
        np.testing.assert_array_equal(after.preference[t], task.preference)
    assert not np.allclose(after.preference[8], task.preference)  # drifted meanwhile
    assert np.abs(after.preference[8] - task.preference).max() < 0.2


def test_gaussian_bandit_means_stay_fixed_across_trials():
    family = mq.make_family("bandit-gaussian", num_arms=3, num_pulls=10)
    task = first_test_task(family)
    _, _, _, reward, done, _ = roll(family.env, task, jax.random.key(0), 3000)
    assert int(done.sum()) == 300
    np.testing.assert_allclose(np.asarray(reward).reshape(-1, 3).mean(0), task.arm_means, atol=0.12)


def test_tabular_mdp_rewards_and_transitions_are_the_tasks_in_every_episode():
    family = mq.make_family("tabular-mdp")
    task = first_test_task(family)
    np.testing.assert_allclose(task.transitions.sum(-1), 1.0, rtol=1e-5)
    before, after, action, reward, done, _ = roll(family.env, task, jax.random.key(0), 3000)
    assert int(done.sum()) == 300
    residual = np.asarray(reward) - np.asarray(task.reward_means)[before.state, action]
    assert abs(residual.mean()) < 0.1 and abs(residual.std() - 1.0) < 0.1
    moved = ~np.asarray(done)  # a step that ended an episode shows the reset state instead
    p_next = np.asarray(task.transitions)[before.state, action, after.state][moved]
    assert p_next.min() > 0 and np.log(p_next).mean() > np.log(1 / 10)  # likelier than uniform


def test_discrete_pendulum_torques_match_gymnax_continuous():
    env = classic_control.DiscretePendulum(num_torques=5)
    params = pendulum.EnvParams(m=0.7, l=1.3, g=12.0)
    _, state = env.reset(jax.random.key(0), params)
    reference = pendulum.Pendulum()
    for action, torque in [(0, -2.0), (2, 0.0), (4, 2.0)]:
        ours = env.step_env(jax.random.key(1), state, action, params)
        theirs = reference.step_env(jax.random.key(1), state, jnp.float32(torque), params)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
        assert float(ours[2]) == pytest.approx(float(theirs[2]))


def test_acrobot_recomputes_centres_of_mass():
    task = first_test_task(mq.make_family("acrobot"))
    np.testing.assert_allclose(task.link_com_pos_1, task.link_length_1 / 2, rtol=1e-6)
    np.testing.assert_allclose(task.link_com_pos_2, task.link_length_2 / 2, rtol=1e-6)


def test_metamaze_holds_out_every_fifth_goal_cell():
    maze = mq.make_family("metamaze")
    cells = maze.env.goal_cells()
    train_goals = {tuple(g) for g in np.asarray(maze.train_tasks(jax.random.key(0), 500).goal)}
    test_goals = {tuple(g) for g in np.asarray(maze.test_tasks().goal)}
    assert test_goals <= {tuple(g) for g in cells[::5]}
    assert train_goals == {tuple(g) for g in cells} - {tuple(g) for g in cells[::5]}


@pytest.mark.parametrize("name, kwargs, message", [
    ("acrobot", {"length": (1.0, 0.5)}, "acrobot length = \\(1.0, 0.5\\): must be \\(low, high\\)"),
    ("mountaincar", {"force": 0.001}, "mountaincar force = 0.001: must be \\(low, high\\)"),
    ("pendulum", {"num_torques": 1}, "pendulum num_torques = 1: must be an integer >= 2"),
    ("bandit-gaussian", {"num_arms": 0}, "bandit-gaussian num_arms = 0: must be a positive integer"),
    ("tabular-mdp", {"num_states": 2.5}, "tabular-mdp num_states = 2.5: must be a positive integer"),
    ("metamaze", {"maze_size": 8}, "metamaze maze_size = 8: must be odd"),
    ("pointrobot", {"dense_reward": 1}, "pointrobot dense_reward = 1: must be True or False"),
    ("asterix", {"spawn_speed": (4.0, 8)}, "asterix spawn_speed = \\(4.0, 8\\): must be \\(low, high\\) integers"),
    ("recsys", {"drift_std": -0.1}, "recsys drift_std = -0.1: must be a finite number >= 0"),
])
def test_invalid_family_arguments_are_named(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mq.make_family(name, **kwargs)


def test_rl2_bandit_grid_is_registered():
    family = mq.make_family("bandit-k50-n500")
    assert family.name == "bandit-k50-n500" and family.num_actions == 50
    assert int(family.test_tasks(1).max_steps_in_episode[0]) == 500
    names = mq.list_families()
    assert all(f"bandit-k{k}-n{n}" in names for k in (5, 10, 50) for n in (10, 100, 500))
