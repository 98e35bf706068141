"""MQL's propensity model: the logistic fit against scikit-learn's, β's clipping, and the effective
sample size on hand-made weights."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from metaq_jax import propensity


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    old = rng.normal([0.5, -0.2, 0.0], 1.0, size=(60, 3))
    new = rng.normal([-0.5, 0.4, 0.3], 0.8, size=(25, 3))
    x = np.concatenate([old, new]).astype(np.float32)
    y = np.concatenate([np.ones(60), np.zeros(25)]).astype(np.float32)
    weights = rng.uniform(0.2, 2.0, size=85).astype(np.float32)
    return x, y, weights


@pytest.mark.parametrize("l2", [1.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_fit_matches_scikit_learn(data, l2, weighted):
    x, y, weights = data
    sample_weight = weights if weighted else None
    # in float64: scikit-learn fits float32 data less tightly than its tolerance
    reference = LogisticRegression(C=1.0 / l2, tol=1e-12, max_iter=10_000).fit(
        x.astype(np.float64), y, sample_weight=None if sample_weight is None else sample_weight.astype(np.float64))
    w, b = propensity.logistic_fit(jnp.asarray(x), jnp.asarray(y), None if sample_weight is None else jnp.asarray(weights),
                                   l2=l2)
    np.testing.assert_allclose(w, reference.coef_[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, reference.intercept_[0], rtol=1e-4, atol=1e-5)


def test_a_zero_weight_row_is_left_out(data):
    x, y, weights = data
    w, b = propensity.logistic_fit(jnp.asarray(x), jnp.asarray(y), jnp.asarray(weights).at[:10].set(0.0))
    w_without, b_without = propensity.logistic_fit(jnp.asarray(x[10:]), jnp.asarray(y[10:]), jnp.asarray(weights[10:]))
    np.testing.assert_allclose(w, w_without, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, b_without, rtol=1e-5, atol=1e-6)


def test_propensity_weights_are_the_new_task_odds_clipped():
    x = jnp.array([[0.0], [1.0], [-3.0]])
    beta = propensity.propensity_weights(x, jnp.array([1.0]), jnp.array(0.5), clip=2.0)
    np.testing.assert_allclose(beta, [np.exp(-0.5), np.exp(-1.5), 2.0], rtol=1e-6)


@pytest.mark.parametrize("beta, mask, expected", [
    ([1.0, 1.0, 1.0, 1.0], None, 1.0),
    ([1.0, 0.0, 0.0, 0.0], None, 0.25),
    ([2.0, 1.0], None, 9.0 / 10.0),
    ([2.0, 1.0, 5.0], [1.0, 1.0, 0.0], 9.0 / 10.0),  # a masked-out sample counts for nothing
    ([0.0, 0.0], None, 0.0),
])
def test_effective_sample_size_on_hand_made_weights(beta, mask, expected):
    got = propensity.effective_sample_size(jnp.asarray(beta), None if mask is None else jnp.asarray(mask))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
