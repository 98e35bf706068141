"""MAML's meta-gradient: exact against float64 finite differences; first order differs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import metaq_jax as mq
from metaq_jax.algos import maml_task_grad

from helpers import assert_trees_close, tiny_config


def collect_task_data(problem, params, target, task, key):
    """The support and query data `maml_task_grad` collects for one task with `key`."""
    k_support, k_query = jax.random.split(key)
    support = problem.support(params, task, k_support)
    adapted = problem.inner(params, target, support, first_order=False)
    return support, problem.collect(adapted, task, k_query, problem.config.epsilon)


@pytest.fixture(scope="module")
def smooth_case():
    """A float64 meta-objective on fixed data from 2 nav2d tasks, with a tanh network."""
    with jax.enable_x64(True):
        config = tiny_config(num_tasks=2, rollout_length=8, inner_steps=2, inner_lr=0.3,
                             hidden_sizes=(8, 8), activation="tanh", gamma=0.9, support_epsilon=1.0)
        problem = mq.make_problem(config)
        k_init, k_target, k_data = jax.random.split(jax.random.key(0), 3)
        to64 = functools.partial(jax.tree.map, lambda x: x.astype(jnp.float64))
        params = to64(problem.init_params(k_init))
        target = to64(problem.init_params(k_target))
        tasks = problem.family.train_tasks(jax.random.key(1), 2)
        data = [collect_task_data(problem, params, target, jax.tree.map(lambda x: x[i], tasks), k)
                for i, k in enumerate(jax.random.split(k_data, 2))]
    return problem, params, target, data


def meta_objective(problem, target, data, first_order=False):
    def objective(params):
        losses = [mq.maml_loss(problem, params, target, s, q, first_order=first_order) for s, q in data]
        return sum(losses) / len(losses)
    return objective


def test_second_order_gradient_matches_finite_differences(smooth_case):
    problem, params, target, data = smooth_case
    with jax.enable_x64(True):
        objective = meta_objective(problem, target, data)
        flat, unravel = ravel_pytree(params)
        assert flat.dtype == jnp.float64
        grad = ravel_pytree(jax.grad(objective)(params))[0]
        eps = 1e-6
        f = jax.jit(jax.vmap(lambda v: objective(unravel(v))))
        basis = eps * jnp.eye(flat.size)
        fd = (f(flat[None] + basis) - f(flat[None] - basis)) / (2 * eps)
        rel_err = float(jnp.max(jnp.abs(fd - grad)) / jnp.max(jnp.abs(grad)))
    print(f"finite-difference relative error: {rel_err:.2e} over {flat.size} parameters")
    assert rel_err < 1e-5


def test_first_order_differs_and_is_gradient_at_adapted_point(smooth_case):
    problem, params, target, data = smooth_case
    with jax.enable_x64(True):
        second = ravel_pytree(jax.grad(meta_objective(problem, target, data))(params))[0]
        first = ravel_pytree(jax.grad(meta_objective(problem, target, data, first_order=True))(params))[0]
        at_adapted = []
        for support, query in data:
            adapted = problem.inner(params, target, support, first_order=True)
            at_adapted.append(ravel_pytree(jax.grad(problem.td_loss)(adapted, target, query))[0])
        expected_first = sum(at_adapted) / len(at_adapted)
        first, second = np.asarray(first), np.asarray(second)
    np.testing.assert_allclose(first, expected_first, rtol=1e-10, atol=1e-12)
    cosine = first @ second / (np.linalg.norm(first) * np.linalg.norm(second))
    assert cosine < 0.999 and np.max(np.abs(first - second)) > 1e-4


@pytest.mark.parametrize("first_order", [False, True])
def test_update_gradient_is_maml_loss_gradient_on_collected_data(first_order):
    """`maml_task_grad`, which collects its query data inside the gradient, gives ∇ maml_loss."""
    problem = mq.make_problem(tiny_config())
    params = problem.init_params(jax.random.key(0))
    target = problem.init_params(jax.random.key(1))
    task = jax.tree.map(lambda x: x[0], problem.family.train_tasks(jax.random.key(2), 1))
    key = jax.random.key(3)
    grad, stats = maml_task_grad(problem, params, target, task, key, first_order=first_order)
    support, query = collect_task_data(problem, params, target, task, key)
    loss, expected = jax.value_and_grad(mq.maml_loss, argnums=1)(
        problem, params, target, support, query, first_order=first_order)
    assert_trees_close(grad, expected)
    np.testing.assert_allclose(stats.meta_loss, loss, rtol=1e-6)


def test_meta_sgd_rates_get_exact_gradients_and_move():
    """Meta-SGD: ∂/∂ log α of the meta-loss matches float64 finite differences; the rates learn."""
    with jax.enable_x64(True):
        config = tiny_config(num_tasks=2, rollout_length=8, inner_steps=2, inner_lr=0.3, hidden_sizes=(8,),
                             activation="tanh", meta_sgd=True, support_epsilon=1.0)
        problem = mq.make_problem(config)
        to64 = functools.partial(jax.tree.map, lambda x: x.astype(jnp.float64))
        params = to64(problem.init_params(jax.random.key(0)))
        target = to64(problem.init_params(jax.random.key(1)))
        task = jax.tree.map(lambda x: x[0], problem.family.train_tasks(jax.random.key(2), 1))
        support, query = collect_task_data(problem, params, target, task, jax.random.key(3))
        flat, unravel = ravel_pytree(params["log_lr"])

        def objective(log_lr):
            return mq.maml_loss(problem, {**params, "log_lr": unravel(log_lr)}, target, support, query)

        grad = jax.grad(objective)(flat)
        eps = 1e-6
        basis = eps * jnp.eye(flat.size)
        f = jax.vmap(objective)
        fd = (f(flat[None] + basis) - f(flat[None] - basis)) / (2 * eps)
        grad_scale = float(jnp.max(jnp.abs(grad)))
        rel_err = float(jnp.max(jnp.abs(fd - grad))) / grad_scale
    assert rel_err < 1e-5 and grad_scale > 0
    learner = mq.make_meta_learner(config)
    state = learner.init(jax.random.key(0))
    new_state, _ = jax.jit(learner.update)(state, jax.random.key(1))
    moved = ravel_pytree(new_state.params["log_lr"])[0] - ravel_pytree(state.params["log_lr"])[0]
    assert float(jnp.max(jnp.abs(moved))) > 1e-3  # its own Adam step (0.01), not the network's
    np.testing.assert_allclose(ravel_pytree(state.params["log_lr"])[0], np.log(0.3), rtol=1e-6)


def test_meta_sgd_needs_maml():
    with pytest.raises(ValueError, match="MetaConfig.meta_sgd = True: needs algo maml or fomaml"):
        tiny_config(algo="reptile", meta_sgd=True)


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_step_losses_average_the_meta_losses_of_every_step_count(meta_sgd):
    """With `step_losses` the objective, and so its gradient, is the mean over k = 1..K of the
    plain K=k MAML objective on the same data (each k's adaptation is the first k steps)."""
    config = tiny_config(inner_steps=2, inner_lr=0.3, meta_sgd=meta_sgd)
    problem = mq.make_problem(config)
    params, target = problem.init_params(jax.random.key(0)), problem.init_params(jax.random.key(1))
    task = jax.tree.map(lambda x: x[0], problem.family.train_tasks(jax.random.key(2), 1))
    support, query = collect_task_data(problem, params, target, task, jax.random.key(3))
    def grad(problem):
        return jax.value_and_grad(mq.maml_loss, argnums=1)(problem, params, target, support, query)

    loss, got = grad(mq.make_problem(config.replace(step_losses=True)))
    per_k = [grad(mq.make_problem(config.replace(inner_steps=k))) for k in (1, 2)]
    np.testing.assert_allclose(loss, (per_k[0][0] + per_k[1][0]) / 2, rtol=1e-6)
    assert_trees_close(got, jax.tree.map(lambda a, b: (a + b) / 2, per_k[0][1], per_k[1][1]))


def test_step_losses_need_maml_and_an_inner_step():
    with pytest.raises(ValueError, match="MetaConfig.step_losses = True: needs algo maml or fomaml"):
        tiny_config(algo="reptile", step_losses=True)
    with pytest.raises(ValueError, match="inner_steps 0"):
        tiny_config(inner_steps=0, step_losses=True)


def test_anil_second_order_gradient_matches_finite_differences(smooth_case):
    """ANIL (`adapt="head"`): exact through the head's steps and into the torso via its features."""
    problem, params, target, data = smooth_case
    with jax.enable_x64(True):
        anil = mq.make_problem(problem.config.replace(adapt="head"))
        objective = meta_objective(anil, target, data)
        flat, unravel = ravel_pytree(params)
        grad = jax.grad(objective)(params)
        torso = [g for name, g in grad["params"].items() if name != anil.network.head_name]
        assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(torso)) > 1e-4  # the torso learns
        grad = ravel_pytree(grad)[0]
        eps = 1e-6
        f = jax.jit(jax.vmap(lambda v: objective(unravel(v))))
        basis = eps * jnp.eye(flat.size)
        fd = (f(flat[None] + basis) - f(flat[None] - basis)) / (2 * eps)
        rel_err = float(jnp.max(jnp.abs(fd - grad)) / jnp.max(jnp.abs(grad)))
        maml = ravel_pytree(jax.grad(meta_objective(problem, target, data))(params))[0]
        difference = float(jnp.max(jnp.abs(maml - grad)))
    assert rel_err < 1e-5
    assert difference > 1e-4  # not MAML's gradient: the torso does not adapt


def scan_bodies(fn, *args) -> str:
    """The text of the bodies of every `lax.scan` in `fn`'s jaxpr."""
    return " ".join(str(eqn.params["jaxpr"]) for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns
                    if eqn.primitive.name == "scan")


def test_anil_adapts_the_head_alone_from_features_computed_once(smooth_case):
    problem, params, target, data = smooth_case
    with jax.enable_x64(True):
        anil = mq.make_problem(problem.config.replace(adapt="head"))
        support = data[0][0]
        adapted = anil.inner(params, target, support, first_order=False)
        path = anil.inner(params, target, support, first_order=False, path=True)
        step_bodies = {name: scan_bodies(lambda p: prob.inner(p, target, support, first_order=False), params)
                       for name, prob in (("maml", problem), ("anil", anil))}
    head = anil.network.head_name
    for name in params["params"]:
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(adapted["params"][name]),
                                                         jax.tree.leaves(params["params"][name])))
        assert same == (name != head), name
    assert_trees_close(jax.tree.map(lambda x: x[-1], path), adapted, rtol=1e-12, atol=1e-12)
    # the torso's tanh layers run outside the scan of K steps: once, not at every inner step
    assert "tanh" in step_bodies["maml"] and "tanh" not in step_bodies["anil"]


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_anil_without_a_torso_is_maml(meta_sgd):
    """With no hidden layer every parameter is the head's: ANIL's meta-gradient is MAML's."""
    config = tiny_config(hidden_sizes=(), meta_sgd=meta_sgd, step_losses=True)
    problem, anil = mq.make_problem(config), mq.make_problem(config.replace(adapt="head"))
    params = problem.init_params(jax.random.key(0))
    target = problem.init_params(jax.random.key(1))
    task = jax.tree.map(lambda x: x[0], problem.family.train_tasks(jax.random.key(2), 1))
    expected, _ = maml_task_grad(problem, params, target, task, jax.random.key(3))
    grad, _ = maml_task_grad(anil, params, target, task, jax.random.key(3))
    assert_trees_close(grad, expected)


def test_anil_trains_and_runs_a_trial():
    learner = mq.make_meta_learner(tiny_config(adapt="head", meta_sgd=True))
    state, run_key = mq.training.initial_state(learner, 0)
    before = state.params
    state, metrics = jax.jit(learner.update)(state, run_key)
    assert np.isfinite(np.array(metrics)).all()
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(before)))
    task = jax.tree.map(lambda x: x[0], mq.make_family("nav2d").test_tasks(1))
    returns = learner.trial(state, task, jax.random.key(2), 2)
    assert returns.shape == (2,) and np.isfinite(np.asarray(returns)).all()
