"""The learned oracle: a Q-learner trained on one task reaches the exact ceiling where one is known."""

import jax
import numpy as np

import metaq_jax as mq
from metaq_jax import oracle, protocol


def test_learned_oracle_reaches_the_exact_one_on_nav2d():
    """γ = 0 makes the greedy policy one-step greedy, which is optimal on nav2d: the trained
    Q-learner must come close to the value-iteration oracle on held-out goals."""
    config = mq.MetaConfig(family="nav2d", gamma=0.0, num_envs=8, rollout_length=100)
    problem = mq.make_problem(config)
    tasks = jax.tree.map(lambda x: x[:4], problem.family.test_tasks())
    budget = oracle.OracleBudget(rounds=60, updates=10, lr=3e-3)
    learned = oracle.learned_oracle_returns(problem, problem.init_params(jax.random.key(0)), tasks,
                                            jax.random.key(1), budget=budget)
    exact = np.asarray(jax.vmap(problem.family.oracle_return)(tasks))
    standing_still = -40.0  # about what the untrained start scores
    assert learned.shape == (4,)
    np.testing.assert_allclose(np.mean(learned), np.mean(exact), atol=0.5)  # measured: 0.003 apart
    assert np.mean(learned) > standing_still / 4


def test_protocol_uses_the_learned_oracle_where_no_exact_one_exists():
    config = mq.MetaConfig(family="cartpole", num_tasks=2, num_envs=2, rollout_length=20, inner_steps=1,
                           hidden_sizes=(8,))
    family = mq.make_family("cartpole")
    assert family.oracle_return is None
    learner = mq.make_meta_learner(config)
    state = learner.init(jax.random.key(0))
    report = protocol.protocol_report(config.replace(trial_episodes=1), family, state, state, jax.random.key(1),
                                      oracle_budget=oracle.OracleBudget(rounds=3, updates=2))
    for part in report["protocols"].values():
        assert "oracle" not in part["rows"]
        learned = part["rows"]["oracle_learned"]["mean"]
        assert len(learned) == len(part["points"]) and len(set(learned)) == 1  # a constant ceiling
        assert np.isfinite(learned[0]) and learned[0] > 0  # CartPole pays +1 per step
