"""TD3's critic target, actor gradient and second-order meta-gradient through its inner loop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metaq_jax import td3 as T
from metaq_jax.inner import adapt_by_grads
from metaq_jax.types import Transition


def linear_td3(**constants):
    """A hand-checkable TD3: π(s) = w·s (1-d), Q_i(s, a) = c_i · (s + a)."""
    return T.TD3(actor_fn=lambda p, obs: p["w"] * obs,
                 critic_fn=lambda p, obs, a: (obs + a) * p["c"][None], **constants)


def test_critic_target_takes_the_smaller_twin_clips_the_noise_and_cuts_at_termination():
    td3 = linear_td3(gamma=0.9, policy_noise=10.0, noise_clip=0.1)  # the noise is always clipped
    target = {"actor": {"w": jnp.array(0.95)}, "critic": {"c": jnp.array([2.0, -1.0])}}
    batch = Transition(obs=jnp.zeros((3, 1)), action=jnp.zeros((3, 1)), reward=jnp.array([1.0, 2.0, 3.0]),
                       next_obs=jnp.array([[1.0], [-0.5], [1.0]]), terminated=jnp.array([False, False, True]),
                       truncated=jnp.array([False, True, False]))
    key = jax.random.key(0)
    y = np.asarray(T.critic_targets(td3, target, batch, key))
    sign = np.sign(np.asarray(jax.random.normal(key, (3, 1))))[:, 0]
    action = np.clip(0.95 * np.array([1.0, -0.5, 1.0]) + 0.1 * sign, -1, 1)  # noise clipped to ±0.1, then [−1, 1]
    s_a = np.array([1.0, -0.5, 1.0]) + action
    smaller = np.minimum(2.0 * s_a, -1.0 * s_a)  # min over the twins
    want = np.array([1.0, 2.0, 3.0]) + 0.9 * np.array([1.0, 1.0, 0.0]) * smaller  # a truncation does not cut
    np.testing.assert_allclose(y, want, rtol=1e-6)
    assert abs(action[0]) == 1.0 or sign[0] < 0  # the first action hits the box when its noise is +0.1


def test_critic_target_without_noise_is_the_target_actors_action():
    td3 = linear_td3(gamma=0.5, policy_noise=0.0)
    target = {"actor": {"w": jnp.array(0.5)}, "critic": {"c": jnp.array([1.0, 3.0])}}
    batch = Transition(obs=jnp.zeros((1, 1)), action=jnp.zeros((1, 1)), reward=jnp.array([0.25]),
                       next_obs=jnp.array([[0.4]]), terminated=jnp.array([False]), truncated=jnp.array([False]))
    y = float(T.critic_targets(td3, target, batch, jax.random.key(1))[0])
    assert y == pytest.approx(0.25 + 0.5 * 1.0 * (0.4 + 0.2))


@functools.cache
def networks():
    return T.Actor(action_size=2, hidden_sizes=(8,)), T.TwinCritic(hidden_sizes=(8,))


def small_problem(dtype):
    """A TD3 on 3-d observations and 2-d actions, its parameters, targets and two batches."""
    actor, critic = networks()
    td3 = T.TD3(actor_fn=actor.apply, critic_fn=critic.apply, gamma=0.9)
    k_p, k_t, k_s, k_q = jax.random.split(jax.random.key(0), 4)
    cast = lambda tree: jax.tree.map(lambda x: x.astype(dtype), tree)  # noqa: E731
    params = cast(T.init_params(k_p, actor, critic, jnp.zeros(3), 2))
    target = cast(T.init_params(k_t, actor, critic, jnp.zeros(3), 2))

    def batch(key):
        k = jax.random.split(key, 4)
        return Transition(obs=jax.random.normal(k[0], (16, 3), dtype), action=jax.random.uniform(k[1], (16, 2), dtype, -1, 1),
                          reward=jax.random.normal(k[2], (16,), dtype), next_obs=jax.random.normal(k[3], (16, 3), dtype),
                          terminated=jnp.arange(16) % 5 == 0, truncated=jnp.zeros(16, bool))

    return td3, params, target, batch(k_s), batch(k_q)


def direction_like(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def along(tree, direction, eps):
    return jax.tree.map(lambda x, d: x + eps * d, tree, direction)


def dot(a, b):
    return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_weighted_losses_are_the_plain_ones_at_weight_one_and_drop_rows_at_zero():
    td3 = linear_td3(gamma=0.9)
    params = {"actor": {"w": jnp.array(0.3)}, "critic": {"c": jnp.array([2.0, -1.0])}}
    k = jax.random.split(jax.random.key(0), 3)
    batch = Transition(obs=jax.random.normal(k[0], (4, 1)), action=jax.random.normal(k[1], (4, 1)),
                       reward=jnp.arange(4.0), next_obs=jnp.zeros((4, 1)), terminated=jnp.zeros(4, bool),
                       truncated=jnp.zeros(4, bool))
    targets = jax.random.normal(k[2], (4,))
    half = jnp.array([1.0, 1.0, 0.0, 0.0])
    first = jax.tree.map(lambda x: x[:2], batch)
    np.testing.assert_allclose(T.critic_loss(td3, params["critic"], batch, targets, jnp.ones(4)),
                               T.critic_loss(td3, params["critic"], batch, targets), rtol=1e-6)
    np.testing.assert_allclose(T.critic_loss(td3, params["critic"], batch, targets, half),
                               T.critic_loss(td3, params["critic"], first, targets[:2]), rtol=1e-6)
    np.testing.assert_allclose(T.actor_loss(td3, params["actor"], params["critic"], batch.obs, 2 * half),
                               T.actor_loss(td3, params["actor"], params["critic"], first.obs), rtol=1e-6)


def test_the_actor_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        td3, params, _, support, _ = small_problem(jnp.float64)
        loss = jax.jit(lambda phi: T.actor_loss(td3, phi, params["critic"], support.obs))
        grad = jax.jit(jax.grad(loss))(params["actor"])
        d = direction_like(params["actor"], jax.random.key(5))
        eps = 1e-6
        numeric = (float(loss(along(params["actor"], d, eps))) - float(loss(along(params["actor"], d, -eps)))) / (2 * eps)
        assert dot(grad, d) == pytest.approx(numeric, rel=1e-6)


def test_each_part_follows_its_own_loss_and_the_actor_waits_for_its_delay():
    td3, params, target, support, _ = small_problem(jnp.float32)
    key = jax.random.key(3)
    grads_at = jax.jit(functools.partial(T.td3_grads, td3))
    grads = [grads_at(params, (support, target, key), jnp.int32(step)) for step in (0, 1)]

    @jax.jit
    def separately(params):
        targets = T.critic_targets(td3, target, support, jax.random.fold_in(key, 1))
        return {"actor": jax.grad(T.actor_loss, argnums=1)(td3, params["actor"], params["critic"], support.obs),
                "critic": jax.grad(T.critic_loss, argnums=1)(td3, params["critic"], support, targets)}

    for got, want in zip(jax.tree.leaves(grads[1]), jax.tree.leaves(separately(params))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(grads[0]["actor"]))  # step 0: delayed
    assert any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads[0]["critic"]))


def meta_objective(td3, params, target, support, query, *, first_order=False):
    """TD3's losses on query data after K = 2 inner TD3 steps on support data (the actor moves at step 1)."""
    key = jax.random.key(7)
    grad_fn = functools.partial(T.td3_grads, td3)
    adapted = adapt_by_grads(params, grad_fn, (support, target, key), steps=2, lr=0.05, first_order=first_order)
    targets = T.critic_targets(td3, target, query, jax.random.key(8))
    return (T.critic_loss(td3, adapted["critic"], query, targets)
            + T.actor_loss(td3, adapted["actor"], adapted["critic"], query.obs))


def test_the_second_order_meta_gradient_through_td3_matches_float64_finite_differences():
    with jax.enable_x64(True):
        td3, params, target, support, query = small_problem(jnp.float64)
        objective = jax.jit(lambda p: meta_objective(td3, p, target, support, query))
        grad = jax.jit(jax.grad(objective))(params)
        first_order = jax.jit(jax.grad(lambda p: meta_objective(td3, p, target, support, query, first_order=True)))(params)
        d = direction_like(params, jax.random.key(6))
        eps = 1e-6
        numeric = (float(objective(along(params, d, eps))) - float(objective(along(params, d, -eps)))) / (2 * eps)
        assert dot(grad, d) == pytest.approx(numeric, rel=1e-6)
        assert abs(dot(first_order, d) - numeric) > 1e-4 * abs(numeric)  # the second-order terms matter here
