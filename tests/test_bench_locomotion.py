"""The locomotion throughput benchmark: its rollout is the family's, its rows are well formed."""

import jax
import numpy as np

from metaq_jax.bench import locomotion
from metaq_jax.tasks import make_family


def test_rows_time_a_tiny_rollout_of_each_family_asked():
    (row,) = locomotion.locomotion_rows(("ant-dir",), num_envs=2, length=3, rounds=1)
    assert (row["family"], row["backend"], row["num_envs"], row["length"]) == ("ant-dir", "spring", 2, 3)
    assert row["compile_s"] > 0 and row["rollout_s"]["n"] == 1
    assert row["env_steps_per_s"] == 6 / row["rollout_s"]["median"]
    table = locomotion.markdown([row])
    assert table.count("\n") == 2 and "| ant-dir | spring | 2 × 3 |" in table


def test_the_random_rollout_pays_the_tasks_reward():
    """Two tasks, the same keys: the same motion, different rewards (the task's, not brax's)."""
    family = make_family("cheetah-vel", max_steps=4)
    tasks = family.test_tasks(2)
    one = lambda i: jax.tree.map(lambda x: x[i], tasks)  # noqa: E731
    run = jax.jit(lambda task: locomotion.random_rollout(family.env, task, 2, 6)(jax.random.key(0)))
    first, second = np.asarray(run(one(0))), np.asarray(run(one(1)))
    assert first.shape == (6, 2)
    gap = abs(float(one(0).velocity) - float(one(1).velocity))
    assert np.all(np.abs(first - second) <= gap + 1e-5) and np.any(np.abs(first - second) > 1e-3)
