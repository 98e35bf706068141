"""Q-networks: any flax module mapping observations `[..., *obs]` to values `[..., A]` works."""

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


class QNetwork(nn.Module):
    """An MLP Q-network: `obs[..., *obs] -> q[..., num_actions]`.

    The last `obs_ndim` axes are the observation and are flattened (e.g. 3 for image frames).
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs):
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = jnp.reshape(obs, batch_shape + (-1,))
        if not jnp.issubdtype(x.dtype, jnp.floating):  # e.g. boolean frames
            x = x.astype(jnp.float32)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


def make_q_network(
    num_actions: int, hidden_sizes: Sequence[int], activation: str, obs_ndim: int = 1
) -> QNetwork:
    """The default `QNetwork` from config values (`activation` is a name in `ACTIVATIONS`)."""
    return QNetwork(num_actions, tuple(hidden_sizes), ACTIVATIONS[activation], obs_ndim)


class TabularQ(nn.Module):
    """A Q-table over one-hot states: `q[..., A] = obs[..., :num_states] @ table[S, A]`.

    An SGD step of the TD loss on a transition (s, a, r, s') then changes only Q(s, a), by
    α·δ: the tabular Q-learning update. `num_states=0` is a single state (a bandit's Q(a)).
    Zero-initialised, the usual start of tabular Q-learning.
    """

    num_states: int
    num_actions: int

    @nn.compact
    def __call__(self, obs):
        table = self.param("table", nn.initializers.zeros, (max(self.num_states, 1), self.num_actions))
        if self.num_states == 0:
            return jnp.broadcast_to(table[0], obs.shape[:-1] + (self.num_actions,))
        return obs[..., : self.num_states] @ table
