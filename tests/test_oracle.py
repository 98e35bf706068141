"""The learned oracle is a ceiling: it reaches the exact oracle where one is known, and a full
CartPole episode; it stops by its own learning curve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import oracle, protocol


def test_learned_oracle_reaches_the_exact_one_on_nav2d():
    """One learner per held-out goal (the default budget with its grid cut to γ = 0 and Adam at 1e-3,
    a quarter of the cost): the exact oracle's return (value iteration), to 1%."""
    problem = mq.make_problem(mq.MetaConfig(family="nav2d", num_envs=8, hidden_sizes=(64, 64)))
    tasks = jax.tree.map(lambda x: x[:4], problem.family.test_tasks())
    run = oracle.learned_oracle(problem, problem.init_params(jax.random.key(0)), tasks, jax.random.key(1),
                                budget=oracle.OracleBudget(gammas=(0.0,), lrs=(1e-3,)))
    exact = np.asarray(jax.vmap(problem.family.oracle_return)(tasks))
    assert run.returns.shape == run.rounds.shape == run.gammas.shape == (4,)
    np.testing.assert_allclose(run.returns, exact, rtol=0.01)  # measured: equal to 1e-6


def test_learned_oracle_balances_cartpole_for_a_whole_episode():
    """CartPole at its default physics pays 1 per step for up to 500 steps: the oracle gets ≥ 475."""
    problem = mq.make_problem(mq.MetaConfig(family="cartpole", num_envs=8, hidden_sizes=(64, 64)))
    task = jax.tree.map(lambda x: jnp.asarray(x)[None], problem.family.default_params)
    run = oracle.learned_oracle(problem, problem.init_params(jax.random.key(0)), task, jax.random.key(10),
                                budget=oracle.OracleBudget(gammas=(0.99,)))
    assert run.returns[0] >= 475


def test_a_learner_stops_when_its_curve_stops_rising():
    budget = oracle.OracleBudget(gammas=(0.0,), lrs=(1e-3,), max_rounds=200, explore_rounds=20, eval_every=5,
                                 patience=3, tolerance=0.01, num_envs=4, rollout_length=8, updates=2)
    problem = mq.make_problem(mq.MetaConfig(family="nav2d", hidden_sizes=(8,)))
    tasks = jax.tree.map(lambda x: x[:3], problem.family.test_tasks())
    run = oracle.learned_oracle(problem, problem.init_params(jax.random.key(0)), tasks, jax.random.key(1),
                                num_seeds=2, budget=budget)
    assert run.curves.shape == (6, budget.num_evals)
    for curve, rounds in zip(run.curves, run.rounds):
        evals = rounds // budget.eval_every
        assert np.isfinite(curve[:evals]).all() and np.isnan(curve[evals:]).all()
        explored = curve[budget.explore_rounds // budget.eval_every:evals]  # the evaluations that compete
        if rounds < budget.max_rounds:  # stopped early: no rise beyond the tolerance in its last `patience` evals
            assert len(explored) > budget.patience
            best_before = np.max(explored[:-budget.patience])
            assert np.max(explored[-budget.patience:]) <= best_before + budget.tolerance * abs(best_before)
    assert (run.rounds < budget.max_rounds).any()


@pytest.mark.parametrize("changes", [dict(max_rounds=25, eval_every=10), dict(max_rounds=50, explore_rounds=60)])
def test_a_budget_that_cannot_stop_cleanly_is_refused(changes):
    with pytest.raises(ValueError, match="OracleBudget.max_rounds"):
        oracle.OracleBudget(**changes)


def test_protocol_uses_the_learned_oracle_where_no_exact_one_exists():
    config = mq.MetaConfig(family="cartpole", num_tasks=2, num_envs=2, rollout_length=20, inner_steps=1,
                           hidden_sizes=(8,))
    family = mq.make_family("cartpole")
    assert family.oracle_return is None
    learner = mq.make_meta_learner(config)
    state = learner.init(jax.random.key(0))
    budget = oracle.OracleBudget(max_rounds=4, explore_rounds=2, eval_every=2, updates=2, num_envs=2, rollout_length=4)
    report = protocol.protocol_report(config.replace(trial_episodes=1), family, state, state, jax.random.key(1),
                                      oracle_budget=budget)
    for part in report["protocols"].values():
        assert "oracle" not in part["rows"]
        learned = part["rows"]["oracle_learned"]["mean"]
        assert len(learned) == len(part["points"]) and len(set(learned)) == 1  # a constant ceiling
        assert np.isfinite(learned[0]) and learned[0] > 0  # CartPole pays +1 per step
