"""Bandit baselines: UCB1 and Thompson sampling find the best arm; random play earns the mean."""

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
