"""The meta-test protocol: every baseline present, oracle exact, table and report consistent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import protocol
from metaq_jax.tasks import nav2d


@pytest.fixture(scope="module")
def bandit_report():
    config = mq.MetaConfig(family="bandit", num_tasks=2, num_envs=2, meta_steps=3, hidden_sizes=(8,))
    return config, protocol.run_protocol(config)


def test_report_has_every_baseline_at_every_step(bandit_report):
    config, report = bandit_report
    assert report["inner_steps"] == [0, 1, 2, 3]
    assert set(report["baselines"]) == {"random_init", "pretrain", "oracle", "ucb1", "thompson", "random_play"}
    for name, values in report["baselines"].items():
        assert len(values) == 4 and len(report["baselines_ci95"][name]) == 4
    family = mq.make_family("bandit")
    oracle = 100 * np.max(np.asarray(family.test_tasks().arm_means), axis=1).mean()
    assert report["baselines"]["oracle"][0] == pytest.approx(oracle, rel=1e-5)
    # the oracle is a ceiling for the strategies that pay for their exploration
    for name in ("ucb1", "thompson", "random_play"):
        assert report["baselines"][name][0] < report["baselines"]["oracle"][0]


def test_markdown_table_has_a_row_per_curve(bandit_report):
    _, report = bandit_report
    table = protocol.markdown_table(report)
    lines = table.splitlines()
    assert lines[0] == "| start | 0 steps | 1 steps | 2 steps | 3 steps |"
    assert len(lines) == 2 + 1 + len(report["baselines"])
    assert f"{report['baselines']['ucb1'][2]:.2f}" in table


def test_pretrain_baseline_uses_the_same_budget():
    config = mq.MetaConfig(meta_sgd=True, step_losses=True)
    pre = protocol.pretrain_config(config)  # valid: the meta-learning options are dropped
    assert pre.algo == "pretrain" and not pre.meta_sgd and not pre.step_losses
    assert (pre.num_tasks, pre.num_envs, pre.rollout_length, pre.meta_steps) == (
        config.num_tasks, config.num_envs, config.rollout_length, config.meta_steps)


def test_nav2d_oracle_and_paper_goals():
    family = mq.make_family("nav2d")
    goals = np.asarray(family.test_tasks().goal)
    np.testing.assert_array_equal(goals, np.random.RandomState(1).uniform(-0.5, 0.5, (40, 2)).astype(np.float32))
    oracle = jax.vmap(family.oracle_return)(family.test_tasks())
    assert float(jnp.mean(oracle)) == pytest.approx(-3.9335, abs=1e-3)
    # the oracle equals rolling the greedy policy out in the environment itself
    task = jax.tree.map(lambda x: x[3], family.test_tasks())
    env, total, (obs, state) = family.env, 0.0, family.env.reset(jax.random.key(0), task)
    for _ in range(100):
        move = jnp.argmin(jnp.linalg.norm(obs[None] + 0.1 * nav2d.MOVES - task.goal[None], axis=-1))
        obs, state, reward, terminated, truncated, _ = env.step(jax.random.key(0), state, move, task)
        total += float(reward)
        if terminated or truncated:
            break
    assert total == pytest.approx(float(oracle[3]), rel=1e-5)
