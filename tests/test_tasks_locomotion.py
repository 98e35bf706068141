"""The brax locomotion families: rewards by their formulas, the task fixed across episodes,
splits, batched == per env, clear refusals (a learner with no continuous version, brax missing)."""

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import cli

from helpers import FAST_COMPILE

LOCOMOTION = ["cheetah-vel", "cheetah-dir", "ant-dir", "ant-goal"]
MAX_STEPS = 5


@functools.cache
def family(name):
    return mq.make_family(name, max_steps=MAX_STEPS)


def task_of(name, index=0):
    return jax.tree.map(lambda x: x[index], family(name).test_tasks())


def compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST_COMPILE)


def actions(steps, size):
    """`[steps, size]` fixed actions in [−1.5, 1.5]: some outside the box, to be clipped."""
    return jnp.asarray(np.random.RandomState(0).uniform(-1.5, 1.5, (steps, size)), jnp.float32)


def torso(physics):
    """The torso's position `[3]` (brax's body 0) in the pipeline state."""
    return physics.pipeline_state.x.pos[0]


def expected_reward(name, before, after, action, task, dt):
    """The task's reward from the torso's displacement over one step, by the family's formula."""
    a = np.clip(np.asarray(action, np.float64), -1, 1)
    velocity = (np.asarray(torso(after), np.float64) - np.asarray(torso(before), np.float64)) / dt
    if name == "cheetah-vel":
        return -abs(velocity[0] - float(task.velocity)) - 0.05 * np.sum(a**2)
    if name == "cheetah-dir":
        return float(task.direction) * velocity[0] - 0.05 * np.sum(a**2)
    healthy_minus_control = 1.0 - 0.5 * np.sum(a**2)  # brax's ant: healthy reward 1, control cost 0.5
    if name == "ant-dir":
        angle = float(task.angle)
        return velocity[0] * np.cos(angle) + velocity[1] * np.sin(angle) + healthy_minus_control
    xy = np.asarray(torso(after), np.float64)[:2]
    return -np.linalg.norm(xy - np.asarray(task.goal, np.float64)) + healthy_minus_control


def steps_without_reset(env, moves):
    """`fn(key, task)`: reset, then `step_env` with each action: (before, after, reward) per step."""
    def run(key, task):
        def step(state, action):
            _, after, reward, _, _ = env.step_env(key, state, action, task)
            return after, (state.physics, after.physics, reward)

        return jax.lax.scan(step, env.reset_env(key, task)[1], moves)[1]

    return run


@pytest.mark.parametrize("name", LOCOMOTION)
def test_reward_is_the_tasks_formula(name):
    env = family(name).env
    task = task_of(name, 1)
    moves = actions(3, env.action_space(task).shape[0])
    run = steps_without_reset(env, moves)
    before, after, reward = compiled(run, jax.random.key(0), task)(jax.random.key(0), task)
    at = lambda tree, t: jax.tree.map(lambda x: x[t], tree)  # noqa: E731
    for t in range(3):
        want = expected_reward(name, at(before, t), at(after, t), moves[t], task, env.robot.dt)
        assert float(reward[t]) == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert np.abs(np.asarray(torso(at(after, 2)) - torso(at(before, 0)))).max() > 1e-3  # the robot moved


def roll(env, moves):
    """`fn(key, task)`: auto-resetting `env.step` with each action: (before, after, reward, done, key) per step."""
    def run(key, task):
        def step(carry, action):
            state, key = carry
            key, k = jax.random.split(key)
            _, after, reward, terminated, truncated, _ = env.step(k, state, action, task)
            return (after, key), (state, after, reward, terminated | truncated, k)

        k_reset, key = jax.random.split(key)
        return jax.lax.scan(step, (env.reset(k_reset, task)[1], key), moves)[1]

    return run


@functools.cache
def cheetah_rollouts():
    """cheetah-vel's `roll` over 12 steps, compiled for one env and vmapped over 3: (moves, single, batched)."""
    env = family("cheetah-vel").env
    moves = actions(12, env.action_space(env.default_params).shape[0])
    run = roll(env, moves)
    keys = jax.random.split(jax.random.key(2), 3)
    tasks = family("cheetah-vel").test_tasks(3)
    one = jax.tree.map(lambda x: x[0], tasks)
    return moves, compiled(run, keys[0], one), compiled(jax.vmap(run), keys, tasks)


def test_the_task_stays_fixed_across_episodes():
    """Every step of every episode pays the task's reward; episodes end after `max_steps`."""
    env = family("cheetah-vel").env
    task, other = task_of("cheetah-vel", 0), task_of("cheetah-vel", 1)
    moves, single, _ = cheetah_rollouts()
    before, after, reward, done, keys = single(jax.random.key(0), task)
    assert np.flatnonzero(np.asarray(done)).tolist()[:2] == [MAX_STEPS - 1, 2 * MAX_STEPS - 1]
    assert int(after.time[MAX_STEPS - 1]) == 0 and int(after.time[MAX_STEPS]) == 1  # a new episode began
    t = 2 * MAX_STEPS + 1  # in the third episode
    at = lambda tree: jax.tree.map(lambda x: x[t], tree)  # noqa: E731
    key_step = jax.random.split(keys[t])[0]  # the key env.step hands to step_env
    replay = jax.jit(lambda params: env.step_env(key_step, at(before), moves[t], params)[2])
    assert float(replay(task)) == pytest.approx(float(reward[t]), rel=1e-5, abs=1e-6)
    assert abs(float(replay(other)) - float(reward[t])) > 1e-3


def test_a_jitted_vmapped_rollout_equals_a_loop_over_envs():
    _, single, batched = cheetah_rollouts()
    keys = jax.random.split(jax.random.key(2), 3)
    tasks = family("cheetah-vel").test_tasks(3)
    _, after, reward, done, _ = batched(keys, tasks)
    for i in range(3):
        _, after_i, reward_i, done_i, _ = single(keys[i], jax.tree.map(lambda x: x[i], tasks))
        np.testing.assert_allclose(reward[i], reward_i, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(done[i], done_i)
        np.testing.assert_allclose(after.physics.pipeline_state.x.pos[i], after_i.physics.pipeline_state.x.pos,
                                   rtol=1e-5, atol=1e-5)


def test_cheetah_dir_tests_both_directions_and_trains_on_both():
    f = family("cheetah-dir")
    np.testing.assert_array_equal(f.test_tasks().direction, [1.0, -1.0])
    train = np.asarray(f.train_tasks(jax.random.key(0), 64).direction)
    assert set(train.tolist()) == {1.0, -1.0}


def test_ant_goals_fill_the_disk():
    goals = np.asarray(family("ant-goal").train_tasks(jax.random.key(0), 4096).goal)
    radius = np.linalg.norm(goals, axis=-1)
    assert radius.max() <= 3.0 + 1e-6
    assert np.mean(radius < 1.5) == pytest.approx(0.25, abs=0.03)  # uniform over the area, not the radius


def test_actions_are_continuous_and_num_actions_is_refused():
    f = family("ant-dir")
    assert f.continuous_actions and f.env.action_space(f.default_params).shape == (8,)
    assert not mq.make_family("nav2d").continuous_actions
    with pytest.raises(mq.InputError, match="ant-dir has continuous actions"):
        f.env.num_actions


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "mjx"}, "cheetah-vel backend = 'mjx': must be one of spring, positional, generalized"),
    ({"max_steps": 0}, "cheetah-vel max_steps = 0: must be an integer >= 1"),
])
def test_bad_family_options_are_refused(kwargs, message):
    with pytest.raises(mq.InputError, match=message):
        mq.make_family("cheetah-vel", **kwargs)


def test_without_brax_the_family_names_the_extra_and_the_listing_says_so(monkeypatch, capsys):
    for name in ("brax", "brax.envs"):
        monkeypatch.setitem(sys.modules, name, None)  # `from brax import envs` now fails
    with pytest.raises(mq.InputError, match=r"family ant-goal needs brax .*pip install 'metaq-jax\[brax\]'"):
        mq.make_family("ant-goal")
    cli.main(["families"])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("ant-goal"))
    assert "(unavailable: family ant-goal needs brax" in line
