"""Bandit baselines: UCB1 and Thompson sampling find the best arm; random play earns the mean; the
Bayes-optimal strategy's values by hand and by simulation. Tabular MDPs: the posterior against the
update by hand, the plan against value iteration, PSRL and certainty equivalence learning in a trial."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metaq_jax import baselines
from metaq_jax.tasks.tabular import Prior, make_tabular_mdp, optimal_return, value_iteration


@pytest.fixture(scope="module")
def totals():
    means = jnp.array([0.2, 0.5, 0.8])
    keys = jax.random.split(jax.random.key(0), 200)
    return {name: np.asarray(jax.jit(jax.vmap(lambda k: baselines.play(policy, k, means, 300)))(keys))
            for name, policy in baselines.BANDIT_POLICIES.items()}


def test_random_play_earns_the_average_arm(totals):
    assert totals["random_play"].mean() == pytest.approx(0.5 * 300, rel=0.03)


@pytest.mark.parametrize("name", ["ucb1", "thompson"])
def test_strategies_find_the_best_arm(totals, name):
    # regret well below random play's 0.3 per pull, and above zero (they must explore)
    regret = 0.8 * 300 - totals[name].mean()
    assert 0 < regret < 0.1 * 300
    assert totals["thompson"].mean() > totals["ucb1"].mean()  # Thompson is known to explore less


def test_ucb1_tries_every_arm_first():
    counts = jnp.array([1.0, 0.0, 3.0])
    assert int(baselines.ucb1(None, jnp.array(4), counts, jnp.array([1.0, 0.0, 3.0]))) == 1


@pytest.mark.parametrize("pulls, arms, value", [
    (1, 3, 0.5),  # one pull of an arm of mean U[0, 1]
    (4, 1, 2.0),  # one arm: nothing to choose
    # 2 arms, 2 pulls: pull A; after a win (1/2) pull A again (pays 2/3), after a loss B (pays 1/2)
    (2, 2, 0.5 + 0.5 * 2 / 3 + 0.5 * 0.5),
])
def test_bayes_optimal_value_by_hand(pulls, arms, value):
    assert baselines.bayes_optimal_value((), arms, pulls) == pytest.approx(value, abs=1e-12)


def test_bayes_optimal_play_earns_its_value_and_beats_ucb1_and_thompson():
    rng = np.random.default_rng(0)
    means = rng.random((1500, 5))
    optimal = np.array([baselines.play_bayes_optimal(rng, m, 10) for m in means])
    value = baselines.bayes_optimal_value((), 5, 10)
    assert abs(optimal.mean() - value) < 4 * optimal.std() / np.sqrt(len(optimal))
    keys = jax.random.split(jax.random.key(1), len(means))
    for policy in (baselines.ucb1, baselines.thompson):
        other = jax.jit(jax.vmap(lambda k, m, p=policy: baselines.play(p, k, m, 10)))(keys, jnp.asarray(means))
        assert value > float(np.mean(other)) + 0.3  # the optimum is well above both on 10 pulls


def test_bayes_optimal_takes_a_sure_winner_and_refuses_long_horizons():
    counts, wins = np.array([3, 0, 3]), np.array([3, 0, 0])
    assert baselines.bayes_optimal_arm(counts, wins, 2) == 0
    with pytest.raises(ValueError, match="num_pulls = 11"):
        baselines.play_bayes_optimal(np.random.default_rng(0), np.full(3, 0.5), 11)


def test_mdp_posterior_is_the_conjugate_update_one_observation_at_a_time():
    prior = Prior(mean=0.5, mean_variance=2.0, noise_variance=0.25, concentration=0.7)
    rewards, nexts = [1.3, -0.2, 0.8], [2, 0, 2]
    mean, variance = prior.mean, prior.mean_variance
    for r in rewards:  # Gaussian prior × Gaussian likelihood, one observation at a time
        gain = variance / (variance + prior.noise_variance)
        mean, variance = mean + gain * (r - mean), (1 - gain) * variance
    counts = np.zeros((2, 3), np.float32)
    sums, next_counts = np.zeros((2, 3), np.float32), np.zeros((2, 3, 3), np.float32)
    counts[1, 2], sums[1, 2] = len(rewards), sum(rewards)
    for s in nexts:
        next_counts[1, 2, s] += 1
    got_mean, got_variance, concentration = baselines.mdp_posterior(counts, sums, next_counts, prior)
    assert float(got_mean[1, 2]) == pytest.approx(mean, rel=1e-6)
    assert float(got_variance[1, 2]) == pytest.approx(variance, rel=1e-6)
    assert float(got_mean[0, 0]) == prior.mean and float(got_variance[0, 0]) == prior.mean_variance  # no data
    np.testing.assert_allclose(concentration[1, 2], [1.7, 0.7, 2.7])  # next states 2, 0, 2
    np.testing.assert_allclose(concentration[0, 1], [0.7, 0.7, 0.7])


def test_value_iterations_plan_earns_its_optimum_and_needs_its_steps_to_go():
    params = make_tabular_mdp().sample_params(jax.random.key(3))
    horizon, (states, _) = 10, params.reward_means.shape
    _, actions = value_iteration(params.reward_means, params.transitions, horizon)
    assert actions.shape == (horizon, states)

    def value_of(plan):  # exact policy evaluation, backwards from the last step
        value = jnp.zeros(states)
        for t in reversed(range(horizon)):
            a = plan[t]
            value = params.reward_means[jnp.arange(states), a] + params.transitions[jnp.arange(states), a] @ value
        return float(jnp.mean(value))

    optimum = float(optimal_return(params, horizon))
    assert value_of(actions) == pytest.approx(optimum, rel=1e-5)
    assert value_of(actions[::-1]) < optimum - 1e-3  # the plan is not the same at every step: order matters
    assert value_of(jnp.tile(params.reward_means.argmax(1), (horizon, 1))) < optimum - 1e-3  # nor myopic


@pytest.fixture(scope="module")
def mdp_trials():
    family = make_tabular_mdp()
    tasks = jax.vmap(family.sample_params)(jax.random.split(jax.random.key(0), 300))
    keys = jax.random.split(jax.random.key(1), 300)
    out = {name: np.asarray(jax.jit(jax.vmap(lambda k, p, s=sample: baselines.play_mdp_trial(
        family.env, p, k, 8, family.episode_length, sample=s)))(keys, tasks))
        for name, sample in baselines.MDP_STRATEGIES.items()}
    return out, float(np.mean(jax.vmap(family.oracle_return)(tasks)))


@pytest.mark.parametrize("name", list(baselines.MDP_STRATEGIES))
def test_mdp_strategies_learn_across_the_trial_and_stay_below_the_optimum(mdp_trials, name):
    returns, optimum = mdp_trials
    per_episode = returns[name].mean(axis=0)  # [E]
    assert per_episode.shape == (8,)
    # the first episode knows nothing of the task; by the last, the posterior has learned much of it
    assert per_episode[-2:].mean() > per_episode[0] + 3.0
    assert per_episode.max() < optimum
    assert per_episode[0] > 5.0  # even the prior's plan is far above nothing: rewards are N(1, 1)
