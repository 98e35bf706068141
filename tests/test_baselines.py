"""Bandit baselines: UCB1 and Thompson sampling find the best arm; random play earns the mean; the
Bayes-optimal strategy's values by hand and by simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metaq_jax import baselines


@pytest.fixture(scope="module")
def totals():
    means = jnp.array([0.2, 0.5, 0.8])
    keys = jax.random.split(jax.random.key(0), 200)
    return {name: np.asarray(jax.jit(jax.vmap(lambda k: baselines.play(policy, k, means, 300)))(keys))
            for name, policy in baselines.BANDIT_POLICIES.items()}


def test_random_play_earns_the_average_arm(totals):
    assert totals["random_play"].mean() == pytest.approx(0.5 * 300, rel=0.03)


@pytest.mark.parametrize("name", ["ucb1", "thompson"])
def test_strategies_find_the_best_arm(totals, name):
    # regret well below random play's 0.3 per pull, and above zero (they must explore)
    regret = 0.8 * 300 - totals[name].mean()
    assert 0 < regret < 0.1 * 300
    assert totals["thompson"].mean() > totals["ucb1"].mean()  # Thompson is known to explore less


def test_ucb1_tries_every_arm_first():
    counts = jnp.array([1.0, 0.0, 3.0])
    assert int(baselines.ucb1(None, jnp.array(4), counts, jnp.array([1.0, 0.0, 3.0]))) == 1


@pytest.mark.parametrize("pulls, arms, value", [
    (1, 3, 0.5),  # one pull of an arm of mean U[0, 1]
    (4, 1, 2.0),  # one arm: nothing to choose
    # 2 arms, 2 pulls: pull A; after a win (1/2) pull A again (pays 2/3), after a loss B (pays 1/2)
    (2, 2, 0.5 + 0.5 * 2 / 3 + 0.5 * 0.5),
])
def test_bayes_optimal_value_by_hand(pulls, arms, value):
    assert baselines.bayes_optimal_value((), arms, pulls) == pytest.approx(value, abs=1e-12)


def test_bayes_optimal_play_earns_its_value_and_beats_ucb1_and_thompson():
    rng = np.random.default_rng(0)
    means = rng.random((1500, 5))
    optimal = np.array([baselines.play_bayes_optimal(rng, m, 10) for m in means])
    value = baselines.bayes_optimal_value((), 5, 10)
    assert abs(optimal.mean() - value) < 4 * optimal.std() / np.sqrt(len(optimal))
    keys = jax.random.split(jax.random.key(1), len(means))
    for policy in (baselines.ucb1, baselines.thompson):
        other = jax.jit(jax.vmap(lambda k, m, p=policy: baselines.play(p, k, m, 10)))(keys, jnp.asarray(means))
        assert value > float(np.mean(other)) + 0.3  # the optimum is well above both on 10 pulls


def test_bayes_optimal_takes_a_sure_winner_and_refuses_long_horizons():
    counts, wins = np.array([3, 0, 3]), np.array([3, 0, 0])
    assert baselines.bayes_optimal_arm(counts, wins, 2) == 0
    with pytest.raises(ValueError, match="num_pulls = 11"):
        baselines.play_bayes_optimal(np.random.default_rng(0), np.full(3, 0.5), 11)
