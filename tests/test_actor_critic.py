"""The gradient learners over TD3 on a continuous-action family: one meta-step, the first-order
identity, evaluation and trial shapes, exploration, and what they refuse."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import population, rollout, td3, training
from metaq_jax.algos import actor_critic

from helpers import FAST_COMPILE, make_point


CONFIG = mq.MetaConfig(family="test-point", num_tasks=2, num_envs=2, rollout_length=6, inner_steps=2,
                       inner_lr=0.05, hidden_sizes=(8,), gamma=0.9)


def point_problem(algo):
    """`(params, one test task, the ActorCriticProblem)` of `algo` on the test-point family."""
    family = make_point(num_test_tasks=2)
    actor, critic = td3.Actor(1, (8,)), td3.TwinCritic((8,))
    problem = actor_critic.ActorCriticProblem(CONFIG.replace(algo=algo), family,
                                              td3.TD3(actor.apply, critic.apply, gamma=0.9), actor, critic)
    return learner(algo).init(jax.random.key(0)).params, jax.tree.map(lambda x: x[0], family.test_tasks(1)), problem


@functools.cache
def learner(algo="maml"):
    return mq.make_meta_learner(CONFIG.for_algo(algo) if algo == "pretrain" else CONFIG.replace(algo=algo),
                                make_point(num_test_tasks=2))


def test_a_continuous_family_gets_the_td3_learner_and_one_meta_step_moves_actor_and_critics():
    ml = learner()
    state = ml.init(jax.random.key(0))
    assert set(state.params) == {"actor", "critic"}
    update = jax.jit(ml.update).lower(state, jax.random.key(1)).compile(FAST_COMPILE)
    after, metrics = update(state, jax.random.key(1))
    assert np.isfinite(float(metrics.meta_loss)) and float(metrics.grad_norm) > 0
    for part in ("actor", "critic"):
        moved = [np.any(np.asarray(a) != np.asarray(b)) for a, b in
                 zip(jax.tree.leaves(after.params[part]), jax.tree.leaves(state.params[part]))]
        assert all(moved)


def test_first_order_maml_is_the_query_gradient_at_the_adapted_parameters():
    params, task, problem = point_problem("fomaml")
    key = jax.random.key(4)
    grad, _ = jax.jit(functools.partial(actor_critic.maml_task_grad, problem, first_order=True))(
        params, params, task, key)
    k_support, k_query, k_inner, k_loss = jax.random.split(key, 4)
    support = problem.support(params, task, k_support)
    adapted = problem.inner(params, params, support, k_inner, first_order=True)
    query = problem.collect(adapted, task, k_query, CONFIG.epsilon)
    want = jax.grad(problem.loss)(adapted, params, query, k_loss)
    for g, w in zip(jax.tree.leaves(grad), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_reptile_moves_toward_the_adapted_actor_and_critics():
    """The Reptile direction is θ − φ, φ the K inner TD3 steps on the support data."""
    params, task, problem = point_problem("reptile")
    key = jax.random.key(4)
    grad, stats = jax.jit(functools.partial(actor_critic.reptile_task_grad, problem))(params, params, task, key)
    k_support, _, k_inner, _ = jax.random.split(key, 4)
    adapted = problem.inner(params, params, problem.support(params, task, k_support), k_inner, first_order=True)
    for g, p, a in zip(jax.tree.leaves(grad), jax.tree.leaves(params), jax.tree.leaves(adapted)):
        np.testing.assert_allclose(g, p - a, rtol=1e-5, atol=1e-7)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grad["actor"]))
    assert np.isfinite(float(stats.meta_loss))


def test_evaluate_and_trial_give_a_return_per_step_and_per_episode():
    ml = learner()
    state = ml.init(jax.random.key(0))
    task = jax.tree.map(lambda x: x[0], make_point(num_test_tasks=2).test_tasks(1))
    returns = jax.jit(lambda p, k: ml.evaluate(p, task, k, 3))(state.params, jax.random.key(2))
    assert returns.shape == (4,) and np.all(np.isfinite(returns))
    assert float(returns[1]) == pytest.approx(float(returns[0]))  # step 1 moves the critics only (delay 2)
    trial = jax.jit(lambda s, k: ml.trial(s, task, k, 2))(state, jax.random.key(3))
    assert trial.shape == (2,) and np.all(np.isfinite(trial))


def test_continuous_collection_explores_in_the_box_and_acts_greedily_at_epsilon_zero():
    family = make_point(num_test_tasks=2)
    task = jax.tree.map(lambda x: x[0], family.test_tasks(1))
    actor = lambda p, obs: jnp.full(obs.shape[:-1] + (1,), p)  # noqa: E731  a constant action
    walk = rollout.collect_actions(family.env, actor, 0.3, task, jax.random.key(0), num_envs=3, length=6, epsilon=1.0)
    greedy = rollout.collect_actions(family.env, actor, 0.3, task, jax.random.key(0), num_envs=3, length=6,
                                     epsilon=0.0, noise=0.0)
    noisy = rollout.collect_actions(family.env, actor, 0.95, task, jax.random.key(0), num_envs=3, length=6,
                                    epsilon=0.0, noise=0.5)
    assert walk.action.shape == (6, 3, 1) and np.all(np.abs(walk.action) <= 1) and np.std(walk.action) > 0.2
    np.testing.assert_allclose(greedy.action, 0.3)
    assert np.all(noisy.action <= 1.0) and np.any(noisy.action == 1.0)  # clipped to the box


@pytest.mark.parametrize("change, message", [
    ({"meta_sgd": True}, "MetaConfig.meta_sgd = True: not available on family test-point"),
    ({"step_losses": True}, "MetaConfig.step_losses = True: not available on family test-point"),
    ({"adapt": "head"}, "MetaConfig.adapt = 'head': not available on family test-point"),
])
def test_what_the_continuous_learners_do_not_have_is_refused(change, message):
    with pytest.raises(mq.InputError, match=message):
        mq.make_meta_learner(CONFIG.replace(**change), make_point())


def test_a_network_or_the_discrete_problem_is_refused_on_continuous_actions():
    with pytest.raises(mq.InputError, match="network given for family test-point: its actions are continuous"):
        mq.make_meta_learner(CONFIG, make_point(), network=td3.Actor(1))
    with pytest.raises(mq.InputError, match="family test-point has continuous actions: make_problem builds"):
        mq.make_problem(CONFIG, make_point())


def test_a_population_member_equals_its_run_alone():
    """Inner lrs as run-time leaves: one compiled population, each member its own `training.train`."""
    config, family = CONFIG.replace(meta_steps=2), make_point(num_test_tasks=2)
    pop = population.make_population(config, family, population.grid_members([3], {"inner_lr": [0.01, 0.05]}))
    update, value = jax.jit(pop.update), pop.init()
    for _ in range(config.meta_steps):
        value, _ = update(value)
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(tree))])  # noqa: E731
    members = [flat(jax.tree.map(lambda x: x[i], value.states.params)) for i in range(2)]
    for i, member in enumerate(pop.members):
        state, _ = training.train(population.member_config(config, member), family)
        np.testing.assert_allclose(members[i], flat(state.params), rtol=2e-5, atol=2e-6)
    assert np.abs(members[0] - members[1]).max() > 1e-4  # the inner lr did change the run
