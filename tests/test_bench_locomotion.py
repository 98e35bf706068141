"""The locomotion throughput benchmark: its rows are well formed (its rollout steps the family's own
environment, whose rewards tests/test_tasks_locomotion.py checks), and each learner's meta-step is
timed on a continuous family (the cheap test-point one here)."""

import pytest

from metaq_jax.bench import locomotion

import helpers  # noqa: F401  registers the test-point family


def test_rows_time_a_tiny_rollout_of_each_family_asked():
    (row,) = locomotion.locomotion_rows(("ant-dir",), num_envs=2, length=3, rounds=1)
    assert (row["family"], row["backend"], row["num_envs"], row["length"]) == ("ant-dir", "spring", 2, 3)
    assert row["compile_s"] > 0 and row["rollout_s"]["n"] == 1
    assert row["env_steps_per_s"] == 6 / row["rollout_s"]["median"]
    table = locomotion.markdown([row])
    assert table.count("\n") == 2 and "| ant-dir | spring | 2 × 3 |" in table



def test_learner_rows_time_each_learners_meta_step_on_a_continuous_family():
    rows = locomotion.learner_rows("test-point", ("pretrain", "rl2 gru"), num_tasks=2, num_envs=1, rounds=1)
    assert {name: row["kind"] for name, row in rows.items()} == {"pretrain": "gradient", "rl2 gru": "memory"}
    for row in rows.values():
        assert row["compile_s"] > 0 and row["meta_steps_per_s"] == 1 / row["step_s"]["median"]
        assert row["env_steps_per_s"] == pytest.approx(2 * 6 * (2 if row["kind"] == "gradient" else 1)
                                                       * row["meta_steps_per_s"])
    table = locomotion.learners_markdown(rows)
    assert table.count("\n") == 3 and "| rl2 gru | memory | test-point |" in table


def test_the_locomotion_workload_fits_each_kind():
    config = locomotion.learner_workload("test-point", "mql", 4, 2)
    assert (config.algo, config.task_pool, config.trial_episodes, config.hidden_sizes) == ("mql", 8, 1, (64, 64))
    assert locomotion.learner_workload("test-point", "maml", 4, 2).rollout_length == 6  # one episode
