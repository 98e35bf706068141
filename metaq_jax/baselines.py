"""Classic bandit strategies, the baselines a meta-learned bandit agent must beat.

Each plays one Bernoulli bandit task of `arm_means[k]` for `num_pulls` pulls and returns the
total reward; vmap over tasks and keys.
"""

from typing import Callable

import chex
import jax
import jax.numpy as jnp

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
