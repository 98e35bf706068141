"""PEARL's posterior over z: the product of Gaussian factors in closed form, order-free, sharpening
with context; the KL to the prior against numerical integration; batched == per task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from metaq_jax import latent
from metaq_jax.types import Transition

Z, F = 3, 7


@pytest.mark.parametrize("factors", [1, 2, 5])
def test_product_of_gaussians_is_the_closed_form(factors):
    rng = np.random.default_rng(factors)
    mean, var = rng.normal(size=(factors, Z)), rng.uniform(0.1, 2.0, size=(factors, Z))
    mu, sigma2 = latent.product_of_gaussians(jnp.asarray(mean, jnp.float32), jnp.asarray(var, jnp.float32))
    want_var = 1.0 / np.sum(1.0 / var, axis=0)
    np.testing.assert_allclose(sigma2, want_var, rtol=1e-5)
    np.testing.assert_allclose(mu, want_var * np.sum(mean / var, axis=0), rtol=1e-5, atol=1e-6)
    # the product's density is proportional to the factors' product: check its log-ratio is flat in z
    z = rng.normal(size=(4, Z))
    log_product = sum(stats.norm.logpdf(z, mean[i], np.sqrt(var[i])) for i in range(factors))
    ratio = log_product - stats.norm.logpdf(z, np.asarray(mu), np.sqrt(np.asarray(sigma2)))
    np.testing.assert_allclose(ratio - ratio[0], 0.0, atol=1e-4)


def test_masked_factors_are_left_out_and_an_empty_context_is_the_prior():
    rng = np.random.default_rng(0)
    mean, var = jnp.asarray(rng.normal(size=(4, Z)), jnp.float32), jnp.asarray(rng.uniform(0.5, 1, (4, Z)), jnp.float32)
    mask = jnp.array([1, 0, 1, 0])
    got = latent.product_of_gaussians(mean, var, mask)
    want = latent.product_of_gaussians(mean[::2], var[::2])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    mu, sigma2 = latent.product_of_gaussians(mean, var, jnp.zeros(4))
    np.testing.assert_array_equal(mu, jnp.zeros(Z))
    np.testing.assert_array_equal(sigma2, jnp.ones(Z))


@pytest.mark.parametrize("mean, var", [(0.0, 1.0), (0.7, 0.3), (-1.5, 2.5)])
def test_kl_to_the_prior_is_the_integral(mean, var):
    def integrand(z):
        log_q, log_p = stats.norm.logpdf(z, mean, np.sqrt(var)), stats.norm.logpdf(z)
        return np.exp(log_q) * (log_q - log_p)

    want, _ = integrate.quad(integrand, -30, 30)
    got = latent.kl_to_standard_normal(jnp.array([mean, mean]), jnp.array([var, var]))
    assert float(got) == pytest.approx(2 * want, rel=1e-5, abs=1e-7)  # summed over 2 dimensions


@pytest.fixture(scope="module")
def encoder():
    module = latent.ContextEncoder(latent_size=Z, hidden_sizes=(16,))
    return module, module.init(jax.random.key(0), jnp.zeros((1, F)))


def test_the_posterior_ignores_the_order_of_its_context(encoder):
    module, params = encoder
    features = jax.random.normal(jax.random.key(1), (6, F))
    order = jax.random.permutation(jax.random.key(2), 6)
    np.testing.assert_allclose(latent.posterior(module, params, features),
                               latent.posterior(module, params, features[order]), rtol=1e-5, atol=1e-6)


def test_the_posterior_sharpens_as_context_grows(encoder):
    module, params = encoder
    features = jax.random.normal(jax.random.key(3), (8, F))
    variances = np.stack([latent.posterior(module, params, features[:n])[1] for n in range(1, 9)])
    assert np.all(np.diff(variances, axis=0) < 0)


def test_posteriors_batched_over_tasks_equal_one_at_a_time(encoder):
    module, params = encoder
    features = jax.random.normal(jax.random.key(4), (5, 6, F))  # [tasks, C, F]
    mask = (jnp.arange(6)[None] < jnp.array([1, 2, 3, 6, 0])[:, None]).astype(jnp.float32)
    batched = jax.jit(jax.vmap(lambda f, m: latent.posterior(module, params, f, m)))(features, mask)
    for task in range(5):
        one = latent.posterior(module, params, features[task], mask[task])
        np.testing.assert_allclose(batched[0][task], one[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batched[1][task], one[1], rtol=1e-5, atol=1e-6)


def test_context_features_and_the_reparameterised_draw():
    batch = Transition(obs=jnp.array([[1.0, 2.0]]), action=jnp.array([2]), reward=jnp.array([0.5]),
                       next_obs=jnp.array([[3.0, 4.0]]), terminated=jnp.array([False]), truncated=jnp.array([False]))
    np.testing.assert_array_equal(latent.context_features(batch, 3), [[1, 2, 0, 0, 1, 0.5, 3, 4]])
    mean, var = jnp.array([1.0, -2.0]), jnp.array([4.0, 0.25])
    draws = jax.vmap(lambda k: latent.sample_latent(k, mean, var))(jax.random.split(jax.random.key(0), 20000))
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.05)
    grad = jax.grad(lambda m: latent.sample_latent(jax.random.key(1), m, var).sum())(mean)
    np.testing.assert_array_equal(grad, jnp.ones(2))  # dz/dμ = 1: the encoder gets gradients
