"""TD targets against hand-computed values, terminated and truncated steps included."""

import jax.numpy as jnp
import numpy as np
import pytest

from metaq_jax import Transition, td_error, td_loss


def test_td_error_one_transition():
    q_tm1 = jnp.array([1.0, 2.0, 3.0])
    q_t = jnp.array([0.5, 4.0, -1.0])
    got = td_error(q_tm1, jnp.array(1), jnp.array(0.5), jnp.array(0.9), q_t)
    assert float(got) == pytest.approx(0.5 + 0.9 * 4.0 - 2.0)


def test_td_error_checks_ranks():
    with pytest.raises(AssertionError):
        td_error(jnp.zeros((2, 3)), jnp.array(0), jnp.array(0.0), jnp.array(0.9), jnp.zeros(3))


def linear_q(params, obs):
    """Q(s) = W s: a 2-action linear Q-function of a 2-d observation."""
    return obs @ params


def test_td_loss_hand_computed_with_termination_and_truncation():
    gamma = 0.9
    online = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # Q(s) = s
    target = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # Q'(s) = (2 s0, s1)
    batch = Transition(
        obs=jnp.array([[1.0, 2.0], [3.0, 0.0], [0.5, 0.5]]),
        action=jnp.array([1, 0, 0]),
        reward=jnp.array([1.0, -1.0, 2.0]),
        next_obs=jnp.array([[1.0, 5.0], [2.0, 1.0], [4.0, 0.0]]),
        terminated=jnp.array([False, True, False]),
        truncated=jnp.array([False, False, True]),
    )
    # ordinary step: 1 + 0.9 * max(2, 5) - 2 = 3.5
    # terminated:   -1 + 0 - 3 = -4 (no bootstrap)
    # truncated:     2 + 0.9 * max(8, 0) - 0.5 = 8.7 (bootstrap from the final observation)
    errors = np.array([3.5, -4.0, 8.7])
    expected = 0.5 * np.mean(errors**2)
    got = td_loss(linear_q, online, target, batch, gamma)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_td_loss_takes_precomputed_target_values():
    online, target = jnp.eye(2), jnp.array([[2.0, 0.0], [0.0, 1.0]])
    batch = Transition(obs=jnp.array([[1.0, 2.0], [3.0, 0.0]]), action=jnp.array([1, 0]),
                       reward=jnp.array([1.0, -1.0]), next_obs=jnp.array([[1.0, 5.0], [2.0, 1.0]]),
                       terminated=jnp.array([False, True]), truncated=jnp.array([False, False]))
    q_t = linear_q(target, batch.next_obs)
    assert float(td_loss(linear_q, online, None, batch, 0.9, q_t=q_t)) == float(
        td_loss(linear_q, online, target, batch, 0.9))


def test_td_loss_gradient_ignores_target_network():
    """The bootstrap uses `target_params` only: ∂loss/∂params comes from Q(s, a) alone."""
    import jax

    online = jnp.eye(2)
    batch = Transition(obs=jnp.array([[1.0, 2.0]]), action=jnp.array([1]), reward=jnp.array([1.0]),
                       next_obs=jnp.array([[1.0, 5.0]]), terminated=jnp.array([False]),
                       truncated=jnp.array([False]))
    grad = jax.grad(td_loss, argnums=1)(linear_q, online, online, batch, 0.9)
    delta = 1.0 + 0.9 * 5.0 - 2.0
    np.testing.assert_allclose(grad, -delta * np.array([[0.0, 1.0], [0.0, 2.0]]), rtol=1e-6)


def test_double_q_loss_hand_computed():
    """The online network picks the next action, the target network values it."""
    online = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # Q(s) = s
    target = jnp.array([[2.0, 0.0], [0.0, 1.0]])  # Q'(s) = (2 s0, s1)
    batch = Transition(obs=jnp.array([[1.0, 2.0], [3.0, 0.0]]), action=jnp.array([1, 0]),
                       reward=jnp.array([1.0, -1.0]), next_obs=jnp.array([[1.0, 5.0], [3.0, 1.0]]),
                       terminated=jnp.array([False, False]), truncated=jnp.array([False, False]))
    # online argmax at (1, 5) is action 1, valued by the target at 5: 1 + 0.9 * 5 - 2 = 3.5
    # online argmax at (3, 1) is action 0, valued by the target at 6: -1 + 0.9 * 6 - 3 = 1.4
    expected = 0.5 * np.mean(np.array([3.5, 1.4]) ** 2)
    assert float(td_loss(linear_q, online, target, batch, 0.9, double_q=True)) == pytest.approx(expected, rel=1e-6)
    # at (3, 4) the online network picks action 1, which the target values 4, not its max 6
    differ = batch._replace(next_obs=jnp.array([[1.0, 5.0], [3.0, 4.0]]))
    double = td_loss(linear_q, online, target, differ, 0.9, double_q=True)
    plain = td_loss(linear_q, online, target, differ, 0.9)
    assert float(double) == pytest.approx(0.5 * np.mean(np.array([3.5, -1 + 0.9 * 4 - 3]) ** 2), rel=1e-6)
    assert float(plain) == pytest.approx(0.5 * np.mean(np.array([3.5, -1 + 0.9 * 6 - 3]) ** 2), rel=1e-6)
