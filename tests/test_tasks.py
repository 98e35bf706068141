"""Task families: dynamics, fixed tasks across episodes, the split, the registry, gymnasium parity."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment
from gymnax.environments.classic_control import cartpole

import metaq_jax as mq
from metaq_jax.tasks import nav2d


def run_episodes(family, task, steps, actions, seed=0):
    """Step one env of `task` for `steps` with the given action function; list of step outputs."""
    env = family.env
    key = jax.random.key(seed)
    obs, state = env.reset(key, task)
    out = []
    for t in range(steps):
        key, k = jax.random.split(key)
        step = env.step(k, state, actions(t), task)
        state = step[1]
        out.append(step)
    return out


# families with finitely many tasks: their training draws repeat, so only "tasks do vary" holds
FINITE = ("metamaze", "asterix", "gridworld")


def _flat(tasks) -> np.ndarray:
    """`[N, D]`: per task, a flat vector of all its leaves (goals and game settings are integers)."""
    return np.concatenate([np.asarray(x, np.float64).reshape(x.shape[0], -1) for x in jax.tree.leaves(tasks)], 1)


@pytest.mark.parametrize("name", mq.list_families())
def test_held_out_tasks_are_distinct(name):
    """Every held-out task is another task: finite sets enumerate their held-out rows."""
    family = mq.make_family(name)
    test = _flat(family.test_tasks())
    assert test.shape[0] == family.num_test_tasks and len(np.unique(test, axis=0)) == family.num_test_tasks


def test_a_finite_set_cannot_hold_out_more_tasks_than_it_has():
    with pytest.raises(mq.InputError, match="gridworld num_test_tasks = 6: the family holds out 5 tasks"):
        mq.make_family("gridworld", num_test_tasks=6)
    assert mq.make_family("gridworld", num_test_tasks=2).test_tasks().goal.shape == (2, 2)


@pytest.mark.parametrize("name", ["nav2d", "cartpole", "bandit", "bandit-gaussian", "acrobot",
                                  "mountaincar", "pendulum", "tabular-mdp", "metamaze", "pointrobot",
                                  "asterix", "recsys", "gridworld", "cheetah-vel", "ant-dir", "ant-goal"])
def test_train_and_test_tasks_are_disjoint_and_deterministic(name):
    family = mq.make_family(name)
    test = family.test_tasks()
    again = mq.make_family(name).test_tasks()
    for a, b in zip(jax.tree.leaves(test), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    train = family.train_tasks(jax.random.key(3), 512)
    tr, te = _flat(train), _flat(test)
    assert tr.shape[0] == 512 and te.shape[0] == family.num_test_tasks
    assert not np.any(np.all(np.isclose(tr[:, None], te[None]), axis=-1))
    distinct = len(np.unique(tr, axis=0))
    assert distinct > 1 if name in FINITE else distinct == 512  # tasks do vary


def test_nav2d_dynamics_reward_and_termination():
    family = mq.make_family("nav2d")
    task = nav2d.EnvParams(goal=jnp.array([0.2, -0.1]))
    # up-right (action 2) twice, then down (action 5) three times
    steps = run_episodes(family, task, 5, lambda t: [2, 2, 5, 5, 5][t])
    positions = [np.asarray(s[5]["final_observation"]) for s in steps]
    np.testing.assert_allclose(positions[1], [0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(positions[2], [0.2, 0.1], atol=1e-6)
    assert float(steps[0][2]) == pytest.approx(-np.hypot(0.1, 0.2), rel=1e-5)
    assert [bool(s[3]) for s in steps] == [False, False, False, False, True]
    np.testing.assert_allclose(steps[4][0], [0.0, 0.0])  # auto-reset to the origin


def test_nav2d_truncates_after_100_steps_and_keeps_goal():
    family = mq.make_family("nav2d")
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    steps = run_episodes(family, task, 201, lambda t: 0)  # stand still
    truncated = [bool(s[4]) for s in steps]
    assert truncated[99] and truncated[199] and sum(truncated) == 2
    # the reward of standing at the origin is the same in both episodes: the goal did not move
    assert float(steps[0][2]) == float(steps[150][2]) == pytest.approx(-float(jnp.linalg.norm(task.goal)))


def test_bandit_task_fixed_across_trials():
    family = mq.make_family("bandit", num_arms=3, num_pulls=10)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    steps = run_episodes(family, task, 3000, lambda t: t % 3)
    rewards = np.array([float(s[2]) for s in steps]).reshape(-1, 3)
    np.testing.assert_allclose(rewards.mean(0), task.arm_means, atol=0.05)
    assert sum(bool(s[4]) for s in steps) == 300 and not any(bool(s[3]) for s in steps)


def test_bandit_observation_is_last_action_reward_and_time():
    family = mq.make_family("bandit", num_arms=3, num_pulls=4)
    task = family.env.default_params.replace(arm_means=jnp.array([0.0, 1.0, 0.0]),
                                             max_steps_in_episode=4)
    steps = run_episodes(family, task, 1, lambda t: 1)
    np.testing.assert_allclose(steps[0][0], [0, 1, 0, 1.0, 0.25])


def test_cartpole_recomputes_derived_fields():
    task = jax.tree.map(lambda x: x[0], mq.make_family("cartpole").test_tasks(1))
    np.testing.assert_allclose(task.total_mass, task.masscart + task.masspole, rtol=1e-6)
    np.testing.assert_allclose(task.polemass_length, task.masspole * task.length, rtol=1e-6)
    assert 4.9 <= float(task.gravity) <= 14.7


def test_cartpole_matches_gymnasium_for_200_steps():
    family = mq.make_family("cartpole", gravity=(9.8, 9.8), length=(0.5, 0.5), masspole=(0.1, 0.1))
    ours_params = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    reference = gymnasium.make("CartPole-v1")
    obs_ref, _ = reference.reset(seed=0)
    ours_step = jax.jit(family.env.step)

    def sync(s):  # start our env in the reference's state
        x, x_dot, theta, theta_dot = (jnp.float32(v) for v in s)
        return cartpole.EnvState(time=0, x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot)

    state = sync(reference.unwrapped.state)
    key = jax.random.key(0)
    resets = 0
    for t in range(200):
        action = int(t % 3 == 0) if t % 40 < 20 else int(obs_ref[2] + 0.5 * obs_ref[3] > 0)
        obs_ref, r_ref, term_ref, trunc_ref, _ = reference.step(action)
        key, k = jax.random.split(key)
        _, state, reward, terminated, truncated, info = ours_step(k, state, action, ours_params)
        np.testing.assert_allclose(info["final_observation"], obs_ref, atol=1e-5, err_msg=f"step {t}")
        assert float(reward) == r_ref and bool(terminated) == term_ref and bool(truncated) == trunc_ref
        if term_ref or trunc_ref:
            resets += 1
            obs_ref, _ = reference.reset()
            state = sync(reference.unwrapped.state)
    assert resets >= 1  # the comparison covered a termination


def test_registry_accepts_a_users_own_environment():
    class Constant(environment.Environment):
        """One-step episodes whose reward is the task's `value`."""

        @property
        def default_params(self):
            return Params()

        def step_env(self, key, state, action, params):
            state = environment.EnvState(time=state.time + 1)
            return jnp.zeros(3), state, params.value * (action == 1), jnp.array(True), {}

        def reset_env(self, key, params):
            return jnp.zeros(3), environment.EnvState(time=0)

        @property
        def num_actions(self):
            return 2

        def observation_space(self, params):
            from gymnax.environments import spaces
            return spaces.Box(0.0, 1.0, (3,), jnp.float32)

    from flax import struct

    @struct.dataclass
    class Params(environment.EnvParams):
        value: float = 1.0
        max_steps_in_episode: int = 1

    def factory(**kw):
        return mq.TaskFamily("test-constant", Constant(), lambda k: Params(value=jax.random.uniform(k)), **kw)

    mq.register_family("test-constant", factory, overwrite=True)
    assert "test-constant" in mq.list_families()
    family = mq.make_family("test-constant", num_test_tasks=3)
    assert family.test_tasks().value.shape == (3,)
    config = mq.MetaConfig(family="test-constant", num_tasks=2, num_envs=2, rollout_length=3,
                           hidden_sizes=(4,))
    learner = mq.make_meta_learner(config, family)
    state, metrics = jax.jit(learner.update)(learner.init(jax.random.key(0)), jax.random.key(1))
    assert np.isfinite(float(metrics.meta_loss))
    with pytest.raises(ValueError, match="already registered"):
        mq.register_family("test-constant", factory)


def test_unknown_family_names_the_valid_ones():
    with pytest.raises(ValueError, match="family = 'nope': must be one of .*nav2d"):
        mq.make_family("nope")


def test_families_are_listed_without_importing_them():
    """Built-ins are registered by module path: listing imports no family module (nor gymnax)."""
    import subprocess
    import sys

    script = ("import sys, metaq_jax as mq; names = mq.list_families(); "
              "assert {'nav2d', 'bandit-k5-n10', 'cartpole'} <= set(names), names; "
              "assert not [m for m in sys.modules if m.startswith(('gymnax', 'metaq_jax.tasks.nav2d'))]; "
              "assert mq.make_family('bandit-k5-n10').name == 'bandit-k5-n10'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
