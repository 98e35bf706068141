"""The locomotion throughput benchmark: its rows are well formed (its rollout steps the family's own
environment, whose rewards tests/test_tasks_locomotion.py checks)."""

from metaq_jax.bench import locomotion


def test_rows_time_a_tiny_rollout_of_each_family_asked():
    (row,) = locomotion.locomotion_rows(("ant-dir",), num_envs=2, length=3, rounds=1)
    assert (row["family"], row["backend"], row["num_envs"], row["length"]) == ("ant-dir", "spring", 2, 3)
    assert row["compile_s"] > 0 and row["rollout_s"]["n"] == 1
    assert row["env_steps_per_s"] == 6 / row["rollout_s"]["median"]
    table = locomotion.markdown([row])
    assert table.count("\n") == 2 and "| ant-dir | spring | 2 × 3 |" in table

