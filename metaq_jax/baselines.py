"""Classic strategies, the baselines a meta-learned agent must beat on bandits and tabular MDPs.

Each bandit strategy plays one Bernoulli bandit task of `arm_means[k]` for `num_pulls` pulls and
returns the total reward; vmap over tasks and keys. `bayes_optimal` is the exact optimum for short
horizons under the tasks' own prior, computed by dynamic programming on the host. On `tabular-mdp`,
posterior sampling (PSRL) and its certainty-equivalent twin play a trial of episodes, planning each
episode by value iteration in a model drawn from (or the mean of) the posterior of the trial so far.
"""

import functools
from typing import TYPE_CHECKING, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:  # not at import: gymnax starts JAX's backend
    from metaq_jax.tasks import tabular

BanditPolicy = Callable[[chex.PRNGKey, chex.Array, chex.Array, chex.Array], chex.Array]
"""`policy(key, t, counts[k], wins[k]) -> arm` after `t` pulls."""


def ucb1(key: chex.PRNGKey, t: chex.Array, counts: chex.Array, wins: chex.Array) -> chex.Array:
    """UCB1 (Auer et al. 2002): every arm once, then the highest mean + sqrt(2 ln t / n).

    Args:
      key: unused; UCB1 is deterministic (ties go to the lowest arm).
      t: pulls made so far, a scalar.
      counts: pulls of each arm so far, `[k]`.
      wins: reward collected from each arm so far, `[k]`.

    Returns:
      The arm to pull, an int scalar.
    """
    del key
    bonus = jnp.sqrt(2.0 * jnp.log(jnp.maximum(t, 1)) / jnp.maximum(counts, 1))
    score = jnp.where(counts == 0, jnp.inf, wins / jnp.maximum(counts, 1) + bonus)
    return jnp.argmax(score)


def thompson(key: chex.PRNGKey, t: chex.Array, counts: chex.Array, wins: chex.Array) -> chex.Array:
    """Thompson sampling with a Beta(1, 1) prior on each arm's mean.

    Args:
      key: draws one sample of each arm's posterior mean.
      t: unused.
      counts: pulls of each arm so far, `[k]`.
      wins: reward collected from each arm so far, `[k]`.

    Returns:
      The arm whose posterior sample is highest, an int scalar.
    """
    del t
    return jnp.argmax(jax.random.beta(key, 1.0 + wins, 1.0 + counts - wins))


def random_play(key: chex.PRNGKey, t: chex.Array, counts: chex.Array, wins: chex.Array) -> chex.Array:
    """A uniformly random arm every pull.

    Args:
      key: draws the arm.
      t: unused.
      counts: pulls of each arm so far, `[k]`; only its length is used.
      wins: unused.

    Returns:
      The arm to pull, an int scalar.
    """
    del t, wins
    return jax.random.randint(key, (), 0, counts.shape[0])


def play(policy: BanditPolicy, key: chex.PRNGKey, arm_means: chex.Array, num_pulls: int) -> chex.Array:
    """Total reward of `policy` over `num_pulls` pulls of the Bernoulli arms `arm_means[k]`. `[]`.

    Args:
      policy: a `BanditPolicy`, e.g. `ucb1`.
      key: split into one key per pull, that pull's policy and reward draws.
      arm_means: each arm's probability of paying 1, `[k]`.
      num_pulls: n, a Python int.

    Returns:
      The total reward of the n pulls, a float32 scalar.
    """
    chex.assert_rank(arm_means, 1)
    zeros = jnp.zeros_like(arm_means)

    def pull(carry, inputs):
        counts, wins = carry
        t, step_key = inputs
        k_policy, k_reward = jax.random.split(step_key)
        arm = policy(k_policy, t, counts, wins)
        reward = jax.random.bernoulli(k_reward, arm_means[arm]).astype(jnp.float32)
        return (counts.at[arm].add(1.0), wins.at[arm].add(reward)), reward

    steps = (jnp.arange(num_pulls), jax.random.split(key, num_pulls))
    _, rewards = jax.lax.scan(pull, (zeros, zeros), steps)
    return jnp.sum(rewards)


BANDIT_POLICIES: dict[str, BanditPolicy] = {"ucb1": ucb1, "thompson": thompson, "random_play": random_play}
"""The strategies by the baseline names of the meta-test report."""


BAYES_OPTIMAL_MAX_PULLS = 10
"""The longest horizon `bayes_optimal_arm` is computed for: its states grow combinatorially."""

Arm = tuple[int, int]
"""One arm's record (wins, losses); arms with the same record are interchangeable."""


@functools.cache
def bayes_optimal_value(pulled: tuple[Arm, ...], unpulled: int, left: int) -> float:
    """Expected reward of the remaining pulls under the Bayes-optimal strategy.

    The arms' means are i.i.d. U[0, 1] = Beta(1, 1) (the bandit families' prior), so an arm
    of record (w, l) pays with probability (1 + w) / (2 + w + l), and the state is the multiset
    of records.

    Args:
      pulled: the records of the arms pulled so far, sorted.
      unpulled: how many arms have never been pulled.
      left: pulls remaining.

    Returns:
      The expected total reward of the `left` pulls.
    """
    if left == 0:
        return 0.0
    candidates = set(pulled) | ({(0, 0)} if unpulled else set())
    return max(_pull_value(pulled, unpulled, left, arm) for arm in candidates)


def _pull_value(pulled: tuple[Arm, ...], unpulled: int, left: int, arm: Arm) -> float:
    """Expected reward of pulling an arm of record `arm` now and playing optimally after."""
    wins, losses = arm
    rest = list(pulled)
    if arm == (0, 0):  # a new arm: pulled records have at least one pull
        unpulled -= 1
    else:
        rest.remove(arm)
    won = tuple(sorted([*rest, (wins + 1, losses)]))
    lost = tuple(sorted([*rest, (wins, losses + 1)]))
    pays = (1 + wins) / (2 + wins + losses)
    return (pays * (1.0 + bayes_optimal_value(won, unpulled, left - 1))
            + (1 - pays) * bayes_optimal_value(lost, unpulled, left - 1))


def bayes_optimal_arm(counts: np.ndarray, wins: np.ndarray, left: int) -> int:
    """The arm the Bayes-optimal strategy pulls (ties go to the lowest arm).

    Args:
      counts: pulls of each arm so far, `[k]` ints.
      wins: reward collected from each arm so far, `[k]` ints.
      left: pulls remaining, at most `BAYES_OPTIMAL_MAX_PULLS`.

    Returns:
      The arm's index.
    """
    records = [(int(w), int(c - w)) for c, w in zip(counts, wins)]
    pulled = tuple(sorted(r for r in records if r != (0, 0)))
    unpulled = len(records) - len(pulled)
    values = [_pull_value(pulled, unpulled, left, record) for record in records]
    return int(np.argmax(values))


def play_bayes_optimal(rng: np.random.Generator, arm_means: np.ndarray, num_pulls: int) -> float:
    """Total reward of the Bayes-optimal strategy over `num_pulls` pulls of `arm_means[k]`.

    Args:
      rng: draws the rewards.
      arm_means: each arm's probability of paying 1, `[k]`.
      num_pulls: n, at most `BAYES_OPTIMAL_MAX_PULLS`.

    Returns:
      The total reward.

    Raises:
      ValueError: `num_pulls` is over `BAYES_OPTIMAL_MAX_PULLS`.
    """
    if num_pulls > BAYES_OPTIMAL_MAX_PULLS:
        raise ValueError(f"num_pulls = {num_pulls}: the Bayes-optimal strategy is computed for at most "
                         f"{BAYES_OPTIMAL_MAX_PULLS} pulls")
    counts, wins = np.zeros(len(arm_means), int), np.zeros(len(arm_means), int)
    for left in range(num_pulls, 0, -1):
        arm = bayes_optimal_arm(counts, wins, left)
        counts[arm] += 1
        wins[arm] += int(rng.random() < arm_means[arm])
    return float(wins.sum())


MDP_STRATEGIES = {"psrl": True, "certainty_equivalent": False}
"""The tabular-MDP strategies by baseline name: whether each draws its model from the posterior."""


def mdp_posterior(counts: chex.Array, reward_sums: chex.Array, next_counts: chex.Array,
                  prior: "tabular.Prior") -> tuple[chex.Array, chex.Array, chex.Array]:
    """The conjugate posterior of a tabular MDP after the transitions counted so far.

    Mean rewards: prior N(m, v) and Gaussian noise of variance σ², so after n pulls of (s, a)
    paying Σr in all, μ(s, a) ~ N((m/v + Σr/σ²) / (1/v + n/σ²), 1 / (1/v + n/σ²)). Transitions:
    Dirichlet(α + counts of each next state).

    Args:
      counts: pulls of each (s, a), `[S, A]`.
      reward_sums: their total reward, `[S, A]`.
      next_counts: how often (s, a) led to each s', `[S, A, S]`.
      prior: the family's prior.

    Returns:
      `(reward mean [S, A], reward variance [S, A], Dirichlet concentrations [S, A, S])`.
    """
    precision = 1.0 / prior.mean_variance + counts / prior.noise_variance
    mean = (prior.mean / prior.mean_variance + reward_sums / prior.noise_variance) / precision
    return mean, 1.0 / precision, prior.concentration + next_counts


def play_mdp_trial(env: "tabular.TabularMDP", params: "tabular.EnvParams", key: chex.PRNGKey, num_episodes: int,
                   horizon: int, *, sample: bool) -> chex.Array:
    """Each episode's return of PSRL (`sample`) or certainty equivalence over a trial. `[E]`.

    At each episode's start the strategy takes a model of the MDP from the posterior of the
    trial so far (`mdp_posterior`): a draw (Osband et al. 2013) or its mean (the mean of the
    Dirichlet for transitions), and plays that model's optimal policy (`tabular.value_iteration`) for the
    episode.

    Args:
      env: the task family's environment; its `prior` is the tasks'.
      params: one task.
      key: draws the models, the start states and the rewards.
      num_episodes: E.
      horizon: H, the steps of an episode (the task's `max_steps_in_episode`), a Python int.
      sample: draw the model (PSRL), or take its posterior mean.

    Returns:
      The return of each of the E episodes.
    """
    from metaq_jax.tasks.tabular import value_iteration  # not at import: gymnax starts JAX's backend

    num_states, num_actions = params.reward_means.shape

    def episode(stats, episode_key):
        counts, reward_sums, next_counts = stats
        k_mean, k_next, k_reset, k_steps = jax.random.split(episode_key, 4)
        mean, variance, concentration = mdp_posterior(counts, reward_sums, next_counts, env.prior)
        if sample:
            rewards = mean + jnp.sqrt(variance) * jax.random.normal(k_mean, mean.shape)
            transitions = jax.random.dirichlet(k_next, concentration)
        else:
            rewards, transitions = mean, concentration / jnp.sum(concentration, axis=-1, keepdims=True)
        _, actions = value_iteration(rewards, transitions, horizon)
        _, state = env.reset_env(k_reset, params)

        def step(carry, inputs):
            (counts, reward_sums, next_counts), state = carry
            t, step_key = inputs
            s, a = state.state, actions[t, state.state]
            _, state, reward, _, _ = env.step_env(step_key, state, a, params)
            stats = (counts.at[s, a].add(1.0), reward_sums.at[s, a].add(reward),
                     next_counts.at[s, a, state.state].add(1.0))
            return (stats, state), reward

        (stats, _), paid = jax.lax.scan(step, ((counts, reward_sums, next_counts), state),
                                            (jnp.arange(horizon), jax.random.split(k_steps, horizon)))
        return stats, jnp.sum(paid)

    zeros = jnp.zeros((num_states, num_actions), jnp.float32)
    stats = (zeros, zeros, jnp.zeros((num_states, num_actions, num_states), jnp.float32))
    _, returns = jax.lax.scan(episode, stats, jax.random.split(key, num_episodes))
    return returns
