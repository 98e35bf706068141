"""`adapt` against closed forms on quadratic losses, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metaq_jax import adapt

LR = 0.1


def _spd(key, n):
    m = jax.random.normal(key, (n, n))
    return m @ m.T / n + jnp.eye(n)


@pytest.fixture(scope="module")
def quadratic():
    """Inner loss 0.5 θᵀAθ − bᵀθ (data = (A, b)) and query loss 0.5 φᵀCφ − dᵀφ."""
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 5)
        n = 4
        problem = dict(A=_spd(keys[0], n), b=jax.random.normal(keys[1], (n,)), C=_spd(keys[2], n),
                       d=jax.random.normal(keys[3], (n,)), theta=jax.random.normal(keys[4], (n,)))
    return {k: np.asarray(v) for k, v in problem.items()}


def inner_loss(theta, data):
    a, b = data
    return 0.5 * theta @ a @ theta - b @ theta


def meta_grad(q, steps, **kw):
    def objective(theta):
        phi = adapt(theta, inner_loss, (q["A"], q["b"]), steps=steps, lr=LR, **kw)
        return 0.5 * phi @ q["C"] @ phi - q["d"] @ phi

    return jax.grad(objective)(q["theta"])


def adapted_point(q, steps):
    phi = q["theta"]
    for _ in range(steps):
        phi = phi - LR * (q["A"] @ phi - q["b"])
    return phi


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_second_order_is_product_of_inner_jacobians(quadratic, steps):
    q = quadratic
    with jax.enable_x64(True):
        phi = adapted_point(q, steps)
        grad_at_phi = q["C"] @ phi - q["d"]
        expected = np.linalg.matrix_power(np.eye(4) - LR * q["A"], steps) @ grad_at_phi
        got = meta_grad(q, steps)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_is_gradient_at_adapted_point(quadratic, steps):
    q = quadratic
    with jax.enable_x64(True):
        phi = adapted_point(q, steps)
        got = meta_grad(q, steps, first_order=True)
        second = meta_grad(q, steps)
    np.testing.assert_allclose(got, q["C"] @ phi - q["d"], rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(got - second)) > 1e-3  # the closed forms do differ here


def test_adapted_params_match_closed_form(quadratic):
    q = quadratic
    with jax.enable_x64(True):
        got = adapt(q["theta"], inner_loss, (q["A"], q["b"]), steps=3, lr=LR)
    np.testing.assert_allclose(got, adapted_point(q, 3), rtol=1e-12)


def test_path_gives_every_step(quadratic):
    q = quadratic
    with jax.enable_x64(True):
        got = adapt(q["theta"], inner_loss, (q["A"], q["b"]), steps=3, lr=LR, path=True)
    assert got.shape == (3, 4)
    for k in range(3):
        np.testing.assert_allclose(got[k], adapted_point(q, k + 1), rtol=1e-12)


def test_zero_steps_is_identity(quadratic):
    q = quadratic
    with jax.enable_x64(True):
        got = adapt(q["theta"], inner_loss, (q["A"], q["b"]), steps=0, lr=LR)
    np.testing.assert_array_equal(got, q["theta"])


def test_remat_gives_identical_results(quadratic):
    q = quadratic
    with jax.enable_x64(True):
        plain = meta_grad(q, 5)
        remat = meta_grad(q, 5, remat=True)
    np.testing.assert_array_equal(plain, remat)


def test_per_parameter_learning_rates():
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
    lr = {"w": jnp.array([0.1, 0.5]), "b": jnp.array(0.0)}

    def loss(p, _):
        return 0.5 * jnp.sum(p["w"] ** 2) + 0.5 * p["b"] ** 2

    out = adapt(params, loss, None, steps=1, lr=lr)
    np.testing.assert_allclose(out["w"], [0.9, 1.0])
    np.testing.assert_allclose(out["b"], 3.0)
