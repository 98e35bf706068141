"""rliable's statistics as the reports use them: the same numbers as rliable's own metrics."""

import numpy as np
import pytest
from rliable import library as rly, metrics

from metaq_jax import stats


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 3))
    x[..., 0] = np.round(x[..., 0], 1)  # ties, which count one half
    y = np.round(rng.normal(size=(4, 5, 3)), 1)
    return x, y


def test_by_task_puts_the_task_minor_as_the_evaluation_lays_trials_out():
    returns = np.arange(12.0).reshape(6, 2)  # 3 runs × 2 tasks, 2 points
    scores = stats.by_task(returns, num_tasks=2)
    assert scores.shape == (3, 2, 2)
    np.testing.assert_array_equal(scores[1, 0], returns[2])  # run 1, task 0 = trial 1 × 2 + 0
    with pytest.raises(ValueError, match="5 trials do not split into runs of 2 tasks"):
        stats.by_task(np.zeros((5, 1)), num_tasks=2)


def test_point_estimates_are_rliables_mean_and_iqm_per_point(scores):
    x, _ = scores
    out = stats.mean_and_iqm(x, reps=200)
    for p in range(3):
        assert out["mean"][p] == pytest.approx(metrics.aggregate_mean(x[..., p]), abs=1e-4)
        assert out["iqm"][p] == pytest.approx(metrics.aggregate_iqm(x[..., p]), abs=1e-4)
        for stat in ("mean", "iqm"):
            lo, hi = out[f"{stat}_ci"][p]
            assert lo < out[stat][p] < hi
    assert stats.mean_and_iqm(x, reps=200) == out  # seeded: the same report twice
    assert stats.mean_and_iqm(x, reps=200, seed=1) != out


@pytest.mark.parametrize("runs, tasks", [(1, 1), (1, 2), (3, 1), (7, 3), (5, 5)])
def test_iqm_is_rliables_when_the_scores_do_not_split_into_quarters(runs, tasks):
    x = np.round(np.random.default_rng(runs * tasks).normal(size=(runs, tasks, 2)), 1)
    iqm = stats.mean_and_iqm(x, reps=20)["iqm"]
    assert iqm == stats.rounded([metrics.aggregate_iqm(x[..., p]) for p in range(2)])


def test_intervals_have_no_width_where_scores_do_not_vary():
    out = stats.mean_and_iqm(np.full((3, 4, 2), 7.0), reps=100)
    assert out["mean_ci"] == out["iqm_ci"] == [[7.0, 7.0], [7.0, 7.0]]


def test_the_mean_interval_covers_the_true_mean_about_95_times_in_100():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(60):
        draw = rng.normal(loc=2.0, size=(5, 8, 1))
        (lo, hi), = stats.mean_and_iqm(draw, reps=300)["mean_ci"]
        covered.append(lo <= 2.0 <= hi)
    assert 0.85 <= np.mean(covered) <= 1.0  # 95% nominal; the percentile bootstrap runs a little narrow


def test_improvement_probability_is_rliables_probability_of_improvement(scores):
    x, y = scores
    ours = stats.improvement_probability(x, y)
    for p in range(3):
        assert ours[p] == pytest.approx(metrics.probability_of_improvement(x[..., p], y[..., p]), abs=1e-12)
    assert stats.improvement_probability(x, x)[0] == pytest.approx(0.5)  # against itself: even
    assert stats.improvement_probability(x + 100.0, y).tolist() == [1.0, 1.0, 1.0]


def test_improvement_interval_holds_its_estimate(scores):
    x, y = scores
    out = stats.improvement(x, y, reps=200)
    assert out["poi"] == pytest.approx(stats.improvement_probability(x, y).tolist(), abs=1e-4)
    assert all(lo <= p <= hi for p, (lo, hi) in zip(out["poi"], out["poi_ci"]))


def test_performance_profile_is_rliables_score_distribution(scores):
    x, _ = scores
    taus = stats.profile_thresholds([x[..., 0]], num=9)
    assert (taus[0], taus[-1]) == (x[..., 0].min(), x[..., 0].max())
    out = stats.performance_profile(x[..., 0], taus, reps=200)
    np.testing.assert_allclose(out["fraction"], rly.score_distributions(x[..., 0], taus), atol=1e-4)
    assert np.all(np.diff(out["fraction"]) <= 0) and out["fraction"][-1] == 0.0  # none above the most
    assert all(lo <= f <= hi for f, (lo, hi) in zip(out["fraction"], out["fraction_ci"]))


def test_bootstrap_replications_come_from_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv("METAQ_BOOTSTRAP_REPS", raising=False)
    assert stats.bootstrap_reps() == stats.BOOTSTRAP_REPS == 2000
    monkeypatch.setenv("METAQ_BOOTSTRAP_REPS", "50")
    assert stats.bootstrap_reps() == 50
    monkeypatch.setenv("METAQ_BOOTSTRAP_REPS", "-3")
    with pytest.raises(ValueError, match="METAQ_BOOTSTRAP_REPS = '-3': must be a positive integer"):
        stats.bootstrap_reps()
