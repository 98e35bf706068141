"""The assembled meta-learners: batched == per-task, seeds, no retrace, custom parts."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import metaq_jax as mq
from metaq_jax.algos import TASK_GRADS

from helpers import assert_trees_close, tiny_config, trees_equal

ALGOS = ["maml", "fomaml", "reptile", "pretrain"]


def loop_update(config, state, key, optimizer):
    """`update` written as a Python loop over tasks, one task at a time."""
    problem = mq.make_problem(config)
    k_tasks, k_run = jax.random.split(key)
    tasks = problem.family.train_tasks(k_tasks, config.num_tasks)
    keys = jax.random.split(k_run, config.num_tasks)
    task_grad = jax.jit(TASK_GRADS[config.algo], static_argnums=0)  # one compile for the loop
    grads, stats = [], []
    for i in range(config.num_tasks):
        task = jax.tree.map(lambda x: x[i], tasks)
        g, s = task_grad(problem, state.params, state.target_params, task, keys[i])
        grads.append(g)
        stats.append(s)
    grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
    updates, _ = optimizer.update(grad, state.opt_state, state.params)
    return optax.apply_updates(state.params, updates), stats


@pytest.mark.parametrize("algo,task_batch", [(a, 0) for a in ALGOS] + [("maml", 2), ("reptile", 3)])
def test_batched_update_equals_loop_over_tasks(algo, task_batch):
    """Every way of batching tasks (0: one at a time on this CPU; 2, 3: vmapped in groups, the
    last group short) gives the per-task loop's update."""
    config = tiny_config(algo=algo, task_batch=task_batch)
    learner = mq.make_meta_learner(config)
    state = learner.init(jax.random.key(0))
    key = jax.random.key(1)
    new_state, metrics = jax.jit(learner.update)(state, key)
    params, stats = loop_update(config, state, key, mq.make_optimizer(config))
    assert_trees_close(new_state.params, params)
    np.testing.assert_allclose(metrics.meta_loss, np.mean([s.meta_loss for s in stats]), rtol=1e-5)
    np.testing.assert_allclose(metrics.post_return, np.mean([s.post_return for s in stats]), rtol=1e-5)
    assert int(new_state.step) == 1


def test_reptile_moves_toward_adapted_params():
    config = tiny_config(algo="reptile", num_tasks=1, inner_lr=0.3)
    learner = mq.make_meta_learner(config, optimizer=optax.sgd(0.5))
    problem = mq.make_problem(config)
    state = learner.init(jax.random.key(0))
    key = jax.random.key(1)
    k_tasks, k_run = jax.random.split(key)
    task = jax.tree.map(lambda x: x[0], problem.family.train_tasks(k_tasks, 1))
    k_support, _ = jax.random.split(jax.random.split(k_run, 1)[0])
    support = problem.support(state.params, task, k_support)
    adapted = problem.inner(state.params, state.target_params, support, first_order=True)
    new_params = learner.update(state, key)[0].params
    # θ' = θ + 0.5 (φ − θ): halfway to the adapted parameters
    assert_trees_close(new_params, jax.tree.map(lambda p, a: 0.5 * (p + a), state.params, adapted))
    assert not trees_equal(adapted, state.params)


@pytest.fixture(scope="module")
def maml_learner():
    return mq.make_meta_learner(tiny_config())


def run(learner, seed, steps=3):
    update = jax.jit(learner.update)
    init_key, run_key = jax.random.split(jax.random.key(seed))
    state = learner.init(init_key)
    initial = state.params
    for step in range(steps):
        state, metrics = update(state, jax.random.fold_in(run_key, step))
    return initial, state, metrics


def test_seeds_give_different_params_and_the_same_seed_the_same(maml_learner):
    init_a, state_a, metrics_a = run(maml_learner, 0)
    init_b, state_b, _ = run(maml_learner, 0)
    init_c, state_c, metrics_c = run(maml_learner, 1)
    assert trees_equal(init_a, init_b) and trees_equal(state_a, state_b)
    assert not trees_equal(init_a, init_c)
    assert not trees_equal(state_a.params, state_c.params)
    assert float(metrics_a.post_return) != float(metrics_c.post_return)


def test_no_retrace_after_first_update(maml_learner):
    update = jax.jit(chex.assert_max_traces(maml_learner.update, n=1))
    state = maml_learner.init(jax.random.key(0))
    for step in range(3):
        state, _ = update(state, jax.random.key(step))
    assert int(state.step) == 3


def test_target_network_refreshes_on_its_period(maml_learner):
    _, state, _ = run(maml_learner, 0, steps=2)  # period 2: refreshed after the second update
    assert trees_equal(state.target_params, state.params)
    update = jax.jit(maml_learner.update)
    state3, _ = update(state, jax.random.key(9))
    assert trees_equal(state3.target_params, state.params) and not trees_equal(state3.params, state.params)


def test_remat_gives_the_same_update():
    key = jax.random.key(1)
    out = []
    for remat in (False, True):
        learner = mq.make_meta_learner(tiny_config(remat=remat))
        out.append(jax.jit(learner.update)(learner.init(jax.random.key(0)), key)[0].params)
    assert_trees_close(out[0], out[1], rtol=1e-6, atol=1e-7)


def test_adapt_runs_k_inner_steps_on_support_data():
    config = tiny_config(inner_lr=0.2)
    learner = mq.make_meta_learner(config)
    problem = mq.make_problem(config)
    params = learner.init(jax.random.key(0)).params
    task = jax.tree.map(lambda x: x[0], problem.family.test_tasks(1))
    key = jax.random.key(5)
    adapted = learner.adapt(params, task, key)
    support = problem.support(params, task, key)
    assert_trees_close(adapted, problem.inner(params, params, support, first_order=True))
    assert not trees_equal(adapted, params)
    returns = learner.evaluate(params, task, key, num_steps=3)
    assert returns.shape == (4,) and bool(jnp.all(jnp.isfinite(returns)))


def test_evaluate_measures_a_whole_episode_whatever_the_rollout_length():
    config = tiny_config(family="nav2d", rollout_length=10)
    learner, problem = mq.make_meta_learner(config), mq.make_problem(config)
    assert problem.family.episode_length == 100 != config.rollout_length
    params = learner.init(jax.random.key(0)).params
    task = jax.tree.map(lambda x: x[0], problem.family.test_tasks(1))
    key = jax.random.key(5)
    data = mq.collect(problem.family.env, problem.network.apply, params, task, jax.random.split(key)[1],
                      num_envs=config.num_envs, length=100, epsilon=config.eval_epsilon)
    whole = mq.episode_returns(data, 1)[0]  # the first episode, all 100 steps of it
    np.testing.assert_allclose(learner.evaluate(params, task, key, num_steps=1)[0], whole, rtol=1e-6)


class DuelingQ(nn.Module):
    """A user's own Q-network: value + advantage heads."""

    num_actions: int

    @nn.compact
    def __call__(self, obs):
        h = nn.tanh(nn.Dense(8)(obs))
        advantage = nn.Dense(self.num_actions)(h)
        return nn.Dense(1)(h) + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


def test_any_flax_module_and_optax_optimiser_are_accepted():
    config = tiny_config(family="bandit")
    family = mq.make_family("bandit")
    learner = mq.make_meta_learner(config, family, network=DuelingQ(family.num_actions),
                                   optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1)))
    state = learner.init(jax.random.key(0))
    assert "Dense_2" in state.params["params"]
    new_state, metrics = jax.jit(learner.update)(state, jax.random.key(1))
    assert np.isfinite(float(metrics.meta_loss)) and not trees_equal(new_state.params, state.params)


def test_a_family_must_carry_the_configs_name():
    """The run records `config.family`: a family of another name would be trained unrecorded."""
    with pytest.raises(mq.InputError, match="family 'cartpole' given for MetaConfig.family = 'bandit'"):
        mq.make_meta_learner(tiny_config(family="bandit"), mq.make_family("cartpole"))


def _hand_trial(config, family, params, task, key, num_episodes):
    """The gradient trial written as Python loops over environments and blocks: each environment
    acts alone and adapts on its own filled prefix alone."""
    problem = mq.make_problem(config, family)
    env, every = family.env, config.adapt_every or family.episode_length
    length = num_episodes * family.episode_length
    blocks = -(-length // every)
    begin = mq.rollout.start_rollout(env, task, key, num_envs=config.num_envs, length=blocks * every,
                                     num_actions=env.num_actions, epsilon=config.eval_epsilon)
    returns = []
    for m in range(config.num_envs):  # slice environment m out of the batched start: the same draws
        column = lambda x: x[m:m + 1]  # noqa: E731
        carry = jax.tree.map(column, (begin.obs, begin.state))
        net, seen = params, []
        for b in range(blocks):
            per_step = jax.tree.map(lambda x: x[b * every:(b + 1) * every, m:m + 1], begin.per_step)
            carry, transitions = jax.lax.scan(
                mq.rollout.acting_step(env, problem.network.apply, net, task, config.eval_epsilon), carry, per_step)
            seen.append(transitions)
            data = jax.tree.map(lambda *x: jnp.concatenate(x), *seen)
            net = mq.adapt(params, problem.inner_loss, problem.inner_data(params, data), steps=config.inner_steps,
                           lr=config.inner_lr, first_order=True)
        returns.append(mq.episode_returns(jax.tree.map(lambda *x: jnp.concatenate(x)[:length], *seen), num_episodes))
    return jnp.mean(jnp.stack(returns), axis=0)


def test_a_gradient_trial_adapts_on_the_trial_so_far_every_adapt_every_steps():
    """tabular-mdp (10-step episodes), 3 episodes in blocks of 7 steps (the last cut at 30 steps,
    not a divisor of the episode): after each block each environment acts with θ adapted by K steps
    on its own transitions so far, the buffer's unfilled rows weighing nothing."""
    config = mq.MetaConfig(family="tabular-mdp", network="tabular", inner_steps=2, inner_lr=0.5, num_envs=2,
                           trial_episodes=3, adapt_every=7, eval_epsilon=0.1, gamma=0.5)
    family = mq.make_family("tabular-mdp")
    learner = mq.make_meta_learner(config, family)
    state = learner.init(jax.random.key(0))
    task = jax.tree.map(lambda x: x[1], family.test_tasks())
    got = jax.jit(lambda k: learner.trial(state, task, k, 3))(jax.random.key(4))
    want = _hand_trial(config, family, state.params, task, jax.random.key(4), 3)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # without adaptation the zero table acts otherwise: the test can tell adaptation happened
    frozen = mq.make_meta_learner(config.replace(inner_lr=0.0), family)
    assert not np.allclose(jax.jit(lambda k: frozen.trial(state, task, k, 3))(jax.random.key(4)), got)


@pytest.mark.parametrize("schedule,algo,factor", [
    ("cosine", "maml", lambda t, n: 0.5 * (1 + np.cos(np.pi * t / n))),
    ("linear", "rl2", lambda t, n: 1 - t / n),
    ("linear", "pearl", lambda t, n: 1 - t / n),
])
def test_outer_schedule_decays_the_outer_steps_to_zero_by_the_last_update(schedule, algo, factor):
    """Adam's step is linear in its lr, so each scheduled step is the constant-lr step × the decay
    at its count; the latent kind's optimiser makes `gradient_steps` updates a meta-step. The lr
    is an array in the program, as a population's member gives it."""
    latent = {"gradient_steps": 2} if algo == "pearl" else {}
    config = mq.MetaConfig(family="bandit", algo=algo, meta_steps=3, outer_lr=0.01, **latent)
    num_updates = 6 if latent else 3
    params = {"w": jnp.ones(4)}
    grads = jax.random.normal(jax.random.key(0), (num_updates + 1, 4))

    def steps(config):
        @jax.jit
        def run(lr):
            optimizer = mq.make_optimizer(mq.population.runtime_config(config, {"outer_lr": lr}))

            def one(opt_state, g):
                updates, opt_state = optimizer.update({"w": g}, opt_state, params)
                return opt_state, updates["w"]
            return jax.lax.scan(one, optimizer.init(params), grads)[1]
        return np.asarray(run(jnp.float32(config.outer_lr)))

    constant, scheduled = steps(config), steps(config.replace(outer_schedule=schedule))
    decay = factor(np.arange(num_updates + 1), num_updates)
    np.testing.assert_allclose(scheduled, constant * decay[:, None], rtol=1e-5, atol=1e-9)
    assert np.all(scheduled[-1] == 0) and np.all(constant[-1] != 0)


def test_meta_sgd_rates_decay_on_the_outer_schedule_and_are_clipped_apart_from_the_network():
    """For a constant gradient Adam's step is −lr·sign(g) at every count, so the rates' steps are
    −meta_sgd_lr × the linear decay. Clipped, each group's steps are unclipped Adam's on its own
    gradient scaled to the norm bound: the per-step scales differ between the groups, so clipping
    the two together could not give both."""
    config = mq.MetaConfig(family="bandit", algo="maml", meta_sgd=True, meta_sgd_lr=0.03, meta_steps=4)
    params = {"net": jnp.ones(3), "log_lr": jnp.ones(4)}

    def steps(config, grads):
        optimizer = mq.algos.with_meta_sgd(config, mq.make_optimizer(config))

        def one(opt_state, g):
            updates, opt_state = optimizer.update(g, opt_state, params)
            return opt_state, updates
        return jax.tree.map(np.asarray, jax.lax.scan(one, optimizer.init(params), grads)[1])

    sign = jnp.array([1.0, -1.0, 2.0, -0.5])
    constant = {"net": jnp.ones((5, 3)), "log_lr": jnp.tile(sign, (5, 1))}
    decayed = steps(config.replace(outer_schedule="linear"), constant)["log_lr"]
    np.testing.assert_allclose(decayed, -0.03 * (1 - np.arange(5) / 4)[:, None] * np.sign(sign), rtol=1e-4, atol=1e-9)

    keys = jax.random.split(jax.random.key(0), 4)
    scales = [jnp.exp(2 * jax.random.normal(k, (6, 1))) for k in keys[:2]]
    grads = {"net": scales[0] * jax.random.normal(keys[2], (6, 3)),
             "log_lr": scales[1] * jax.random.normal(keys[3], (6, 4))}
    bound = 0.5 * float(jnp.min(jnp.linalg.norm(grads["log_lr"], axis=1)))
    to_bound = jax.tree.map(lambda g: g * jnp.minimum(1.0, bound / jnp.linalg.norm(g, axis=1, keepdims=True)), grads)
    clipped = steps(config.replace(max_grad_norm=bound), grads)
    by_hand = steps(config, to_bound)
    for group in ("net", "log_lr"):
        np.testing.assert_allclose(clipped[group], by_hand[group], rtol=1e-5)
    assert not np.allclose(steps(config, grads)["log_lr"], clipped["log_lr"], rtol=1e-3)
