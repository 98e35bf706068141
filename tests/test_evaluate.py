"""Learning smoke test: meta-training on nav2d beats a random initialisation on held-out tasks."""

import types

import jax
import numpy as np
import pytest

import metaq_jax as mq

from helpers import trees_equal


@pytest.fixture(scope="module")
def trained():
    config = mq.MetaConfig(num_tasks=8, num_envs=4, inner_steps=1, meta_steps=150, seed=0)
    seen = []
    state, history = mq.train(config, callback=lambda step, m: seen.append(step))
    assert seen == list(range(config.meta_steps)) and len(history) == config.meta_steps
    return config, state, history


def test_one_inner_step_beats_random_init_on_test_tasks(trained):
    config, state, _ = trained
    learner = mq.make_meta_learner(config)
    tasks = mq.make_family("nav2d").test_tasks()
    key = jax.random.key(7)
    meta = mq.adaptation_curve(learner, state.params, tasks, key, num_steps=1)
    random_init = learner.init(jax.random.key(123)).params
    baseline = mq.adaptation_curve(learner, random_init, tasks, key, num_steps=1)
    print(f"after 1 inner step: meta {meta.mean[1]:.2f} ± {meta.ci95[1]:.2f}, "
          f"random init {baseline.mean[1]:.2f} ± {baseline.ci95[1]:.2f}")
    assert meta.returns.shape == (40, 2)
    assert meta.mean[1] - meta.ci95[1] > baseline.mean[1] + baseline.ci95[1]


def test_training_improved_the_adapted_return(trained):
    _, _, history = trained
    post = np.array([m.post_return for m in history])
    assert post[-30:].mean() > post[:10].mean()


def test_train_is_reproducible(trained):
    config, state, _ = trained
    short = config.replace(meta_steps=3)
    a, _ = mq.train(short)
    b, _ = mq.train(short)
    assert trees_equal(a, b) and int(a.step) == 3


def test_a_gradient_learners_support_row_is_its_curve_before_and_after_its_own_inner_steps():
    curve = np.arange(12.0).reshape(3, 4)  # [N, K + 1] after 0..3 inner steps
    got = mq.evaluate.with_support({"trial": np.zeros((3, 2)), "inner_steps": curve}, 1)
    np.testing.assert_array_equal(got["support"], curve[:, [0, 1]])
    np.testing.assert_array_equal(got["inner_steps"], curve)
    assert mq.evaluate.with_support({"trial": np.zeros((3, 2))}, 1).keys() == {"trial"}  # no curve, no row


def test_testing_tasks_a_few_at_a_time_gives_the_same_returns_as_all_at_once(trained):
    config, state, _ = trained
    learner, tasks = mq.make_meta_learner(config), mq.make_family("nav2d").test_tasks()
    sizes = dict(num_episodes=2, num_steps=1, num_seeds=2)
    whole = mq.evaluate.learner_returns(learner, state, tasks, jax.random.key(3), **sizes)
    chunked = mq.evaluate.learner_returns(learner, state, tasks, jax.random.key(3), test_batch=7, **sizes)  # 40 = 5 × 7 + 5
    assert whole.keys() == chunked.keys() == {"trial", "inner_steps"}
    for protocol in whole:
        assert whole[protocol].shape == (80, sizes["num_episodes"] if protocol == "trial" else 2)
        np.testing.assert_allclose(chunked[protocol], whole[protocol], rtol=1e-5, atol=1e-4)


class _Program:
    """A compiled test whose memory grows with the tasks it runs at once: 1 KB each, on 500 bytes."""

    def __init__(self, tasks):
        self.tasks = tasks

    def memory_analysis(self):
        return types.SimpleNamespace(temp_size_in_bytes=500 + 1000 * self.tasks, output_size_in_bytes=0)


@pytest.mark.parametrize("budget, batches", [
    (None, [0]), (10**6, [0]),  # 40 tasks at once take 40.5 KB
    (20_000, [0, 17]),  # 0.9 × 40 × 20 000 / 40 500 tasks: 17.5 KB, which fits
    (3_000, [0, 2]), (1, [0, 1]),  # one at a time is the least it can do
])
def test_a_test_that_does_not_fit_in_memory_runs_fewer_tasks_at_once(budget, batches):
    compiled = []

    def compile_at(batch):
        compiled.append(batch)
        return _Program(batch or 40)

    program, batch = mq.evaluate.fitted_test(compile_at, 40, budget)
    assert compiled == batches and batch == batches[-1] and program.tasks == (batch or 40)
    assert mq.evaluate.memory_budget() > 0  # this machine's free memory is known


def test_a_state_on_a_runs_mesh_and_its_random_init_run_one_compiled_program(trained, monkeypatch):
    """A run's state lies on its mesh; the random initialisation beside it is laid out the same, so
    each protocol compiles once for both (placed apart, each compiled twice), with the same returns."""
    config, state, _ = trained
    learner, tasks = mq.make_meta_learner(config), mq.make_family("nav2d").test_tasks(4)
    made, programs = [], mq.evaluate.programs
    monkeypatch.setattr(mq.evaluate, "programs", lambda *a, **k: made.append(programs(*a, **k)) or made[-1])
    mesh = mq.distributed.make_mesh(1)
    placed = mq.distributed.place(state, mq.distributed.state_sharding(state, mesh, learner.pooled))
    sizes = dict(num_episodes=1, num_steps=1)
    on_mesh = mq.evaluate.paired_returns(learner, placed, tasks, jax.random.key(4), **sizes)
    assert [fn._cache_size() for fn in made[0].values()] == [1, 1]  # trial, inner steps
    plain = mq.evaluate.paired_returns(learner, state, tasks, jax.random.key(4), **sizes)
    for protocol, rows in plain.items():
        for name, returns in rows.items():
            np.testing.assert_array_equal(on_mesh[protocol][name], returns)
