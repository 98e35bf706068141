"""Q-networks: any flax module mapping observations `[..., *obs]` to values `[..., A]` works."""

from typing import Callable, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}
"""The activations `MetaConfig.activation` may name."""


class QNetwork(nn.Module):
    """An MLP Q-network: `obs[..., *obs] -> q[..., num_actions]`.

    The last `obs_ndim` axes are the observation and are flattened (e.g. 3 for image frames).

    Attributes:
      num_actions: A, the output size.
      hidden_sizes: the width of each hidden `Dense` layer.
      activation: applied after each hidden layer.
      obs_ndim: how many trailing axes of the input are the observation.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: chex.Array, features: bool = False) -> chex.Array:
        """Q-values of every action, or the torso's features that the output layer reads.

        Args:
          obs: `[..., *obs]` observations; non-float inputs (e.g. boolean frames) become float32.
          features: return the last hidden layer's output (the flattened observation when there
            is no hidden layer) instead of the Q-values.

        Returns:
          `[..., A]` Q-values, or `[..., F]` features.
        """
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = jnp.reshape(obs, batch_shape + (-1,))
        if not jnp.issubdtype(x.dtype, jnp.floating):  # e.g. boolean frames
            x = x.astype(jnp.float32)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        if features:
            return x
        return nn.Dense(self.num_actions, name=self.head_name)(x)

    @property
    def head_name(self) -> str:
        """The output layer's name in the variables, `Dense_{len(hidden_sizes)}` (what ANIL adapts).

        Returns:
          The name.
        """
        return f"Dense_{len(self.hidden_sizes)}"



def output_layer(head_params: dict, features: chex.Array) -> chex.Array:
    """A `QNetwork`'s output layer alone: Q-values from its torso's features.

    Args:
      head_params: `variables["params"][network.head_name]`, a `Dense` layer's kernel `[F, A]` and bias `[A]`.
      features: `[..., F]`, as `network.apply(variables, obs, features=True)` gives them.

    Returns:
      `[..., A]` Q-values, equal to `network.apply(variables, obs)`.
    """
    return nn.Dense(head_params["bias"].shape[-1], parent=None).apply({"params": head_params}, features)


def make_q_network(
    num_actions: int, hidden_sizes: Sequence[int], activation: str, obs_ndim: int = 1
) -> QNetwork:
    """The default `QNetwork` from config values (`activation` is a name in `ACTIVATIONS`).

    Args:
      num_actions: A.
      hidden_sizes: the hidden layers' widths.
      activation: a key of `ACTIVATIONS`.
      obs_ndim: how many trailing axes of the input are the observation.

    Returns:
      The (uninitialised) flax module.

    Raises:
      KeyError: `activation` is not in `ACTIVATIONS`.
    """
    return QNetwork(num_actions, tuple(hidden_sizes), ACTIVATIONS[activation], obs_ndim)


class LatentQNetwork(nn.Module):
    """An MLP Q-network conditioned on a task variable: `(obs[..., *obs], z[..., Z]) -> q[..., A]`.

    The observation is flattened and concatenated with z (PEARL's Q(s, ·, z)).

    Attributes:
      num_actions: A, the output size.
      hidden_sizes: the width of each hidden `Dense` layer.
      activation: applied after each hidden layer.
      obs_ndim: how many trailing axes of the observation input are the observation.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu
    obs_ndim: int = 1

    @nn.compact
    def __call__(self, obs: chex.Array, z: chex.Array) -> chex.Array:
        """Q-values of every action in the task z names.

        Args:
          obs: `[..., *obs]` observations; non-float inputs become float32.
          z: `[..., Z]` task variables, broadcast against the observations' batch shape `[...]`.

        Returns:
          `[..., A]` Q-values.
        """
        batch_shape = obs.shape[: obs.ndim - self.obs_ndim]
        x = jnp.reshape(obs, batch_shape + (-1,)).astype(jnp.float32)
        z = jnp.broadcast_to(z, batch_shape + z.shape[-1:]).astype(jnp.float32)
        x = jnp.concatenate([x, z], axis=-1)
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


class TabularQ(nn.Module):
    """A Q-table over one-hot states: `q[..., A] = obs[..., :num_states] @ table[S, A]`.

    An SGD step of the TD loss on a transition (s, a, r, s') then changes only Q(s, a), by
    α·δ: the tabular Q-learning update. `num_states=0` is a single state (a bandit's Q(a)).
    Zero-initialised, the usual start of tabular Q-learning.

    Attributes:
      num_states: S, the one-hot prefix of the observation; 0 for a single state.
      num_actions: A.
    """

    num_states: int
    num_actions: int

    @nn.compact
    def __call__(self, obs: chex.Array) -> chex.Array:
        """Q-values of every action.

        Args:
          obs: `[..., D]` observations whose first S features are the state one-hot (the
            rest, e.g. the elapsed time, is ignored; with S = 0 all of it).

        Returns:
          `[..., A]` Q-values: the table's rows picked (mixed) by the one-hot.
        """
        table = self.param("table", nn.initializers.zeros, (max(self.num_states, 1), self.num_actions))
        if self.num_states == 0:
            return jnp.broadcast_to(table[0], obs.shape[:-1] + (self.num_actions,))
        return obs[..., : self.num_states] @ table


def rl2_inputs(obs: chex.Array, prev_action: chex.Array, prev_reward: chex.Array, prev_done: chex.Array,
               num_actions: int) -> chex.Array:
    """The input of a memory-based learner at one step (RL², Duan et al. 2016).

    Args:
      obs: `[..., *obs]` the observation, flattened to `D` features (e.g. image frames).
      prev_action: `[...]` int, the previous action; -1 at a trial's first step (all zeros one-hot).
      prev_reward: `[...]` the previous reward; 0 at a trial's first step.
      prev_done: `[...]` bool, whether the previous step ended an episode.
      num_actions: A.

    Returns:
      `[..., D + A + 2]` float32: the observation, the previous action one-hot, reward and done flag.
    """
    obs = obs.reshape(prev_action.shape + (-1,))
    return jnp.concatenate([obs.astype(jnp.float32), jax.nn.one_hot(prev_action, num_actions, dtype=jnp.float32),
                            prev_reward.astype(jnp.float32)[..., None], prev_done.astype(jnp.float32)[..., None]],
                           axis=-1)


def continuous_rl2_inputs(obs: chex.Array, prev_action: chex.Array, prev_reward: chex.Array,
                          prev_done: chex.Array) -> chex.Array:
    """`rl2_inputs` of a continuous-action family: the previous action as it was, not one-hot.

    Args:
      obs: `[..., *obs]` the observation, flattened to `D` features.
      prev_action: `[..., A]` the previous action; zeros at a trial's first step.
      prev_reward: `[...]` the previous reward; 0 at a trial's first step.
      prev_done: `[...]` bool, whether the previous step ended an episode.

    Returns:
      `[..., D + A + 2]` float32.
    """
    obs = obs.reshape(prev_reward.shape + (-1,))
    return jnp.concatenate([obs.astype(jnp.float32), prev_action.astype(jnp.float32),
                            prev_reward.astype(jnp.float32)[..., None], prev_done.astype(jnp.float32)[..., None]],
                           axis=-1)


class RecurrentEncoder(nn.Module):
    """A trial's memory for a recurrent actor or critic: `(carry, inputs[..., F]) -> (carry, features[..., H + F])`.

    An MLP torso and a GRU or LSTM cell as in `RecurrentQNetwork`, no head: the features are the
    cell's output beside the step's own inputs, for a head (e.g. `td3.Actor`) to read.

    Attributes:
      hidden_size: H, the cell's width.
      cell: `"gru"` or `"lstm"`.
      torso_sizes: the widths of the `Dense` layers before the cell.
      activation: applied after each torso layer.
    """

    hidden_size: int = 64
    cell: str = "gru"
    torso_sizes: Sequence[int] = (64,)
    activation: Callable = nn.relu

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> chex.ArrayTree:
        """Zeros, as `RecurrentQNetwork.initial_carry`.

        Args:
          batch_shape: the leading shape of the inputs, e.g. `(M,)`.

        Returns:
          `[..., H]` for a GRU; a pair of them (cell, hidden) for an LSTM.
        """
        zeros = jnp.zeros(tuple(batch_shape) + (self.hidden_size,), jnp.float32)
        return (zeros, zeros) if self.cell == "lstm" else zeros

    @nn.compact
    def __call__(self, carry: chex.ArrayTree, inputs: chex.Array) -> tuple[chex.ArrayTree, chex.Array]:
        """One step: `(carry, concat(h, inputs))`."""
        x = inputs
        for width in self.torso_sizes:
            x = self.activation(nn.Dense(width)(x))
        carry, h = {"gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}[self.cell](features=self.hidden_size)(carry, x)
        return carry, jnp.concatenate([h, inputs], axis=-1)


class WindowEncoder(nn.Module):
    """MQL's context for a continuous actor or critic: `window[..., H, F] -> features[..., C + F]`.

    A GRU over the window (each step's `continuous_rl2_inputs`) gives the context c, as in
    `ContextQNetwork`; the features are c beside the window's last row (the current step's input,
    which holds the observation), for a head (e.g. `td3.Actor`) to read. `context` exposes c.

    Attributes:
      context_size: C, the GRU's width.
    """

    context_size: int = 16

    def setup(self):
        """Declares the GRU over the window's steps; binds `self.gru`."""
        self.gru = nn.RNN(nn.GRUCell(features=self.context_size))

    def context(self, window: chex.Array) -> chex.Array:
        """The GRU's output after the window's last step, `[..., C]`.

        Args:
          window: `[..., H, F]` the inputs of the last H steps, the current one last.

        Returns:
          `[..., C]` the context c.
        """
        flat = window.reshape((-1,) + window.shape[-2:])
        return self.gru(flat)[:, -1].reshape(window.shape[:-2] + (self.context_size,))

    def __call__(self, window: chex.Array) -> chex.Array:
        """`[..., C + F]`: the context and the current step's input."""
        return jnp.concatenate([self.context(window), window[..., -1, :]], axis=-1)


class RecurrentQNetwork(nn.Module):
    """A recurrent Q-network, one step at a time: `(carry, inputs[..., F]) -> (carry, q[..., A])`.

    An MLP torso, a GRU or LSTM cell, and a linear head. The carry is what a memory-based learner
    knows of its task: it starts at `initial_carry` when a trial starts and is carried through
    every step of the trial, across episode ends.

    Attributes:
      num_actions: A, the output size.
      hidden_size: the cell's width.
      cell: `"gru"` (flax `GRUCell`) or `"lstm"` (flax `OptimizedLSTMCell`).
      torso_sizes: the widths of the `Dense` layers before the cell.
      activation: applied after each torso layer.
    """

    num_actions: int
    hidden_size: int = 64
    cell: str = "gru"
    torso_sizes: Sequence[int] = (64,)
    activation: Callable = nn.relu

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> chex.ArrayTree:
        """The carry at the start of a trial: zeros.

        Args:
          batch_shape: the leading shape of the inputs, e.g. `(M,)`.

        Returns:
          `[..., hidden_size]` for a GRU; a pair of them (cell, hidden) for an LSTM.
        """
        zeros = jnp.zeros(tuple(batch_shape) + (self.hidden_size,), jnp.float32)
        return (zeros, zeros) if self.cell == "lstm" else zeros

    @nn.compact
    def __call__(self, carry: chex.ArrayTree, inputs: chex.Array) -> tuple[chex.ArrayTree, chex.Array]:
        """One step.

        Args:
          carry: from `initial_carry` or the previous step.
          inputs: `[..., F]`, e.g. `rl2_inputs`.

        Returns:
          `(carry, q[..., A])`.
        """
        x = inputs
        for width in self.torso_sizes:
            x = self.activation(nn.Dense(width)(x))
        cell = {"gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}[self.cell](features=self.hidden_size)
        carry, h = cell(carry, x)
        return carry, nn.Dense(self.num_actions)(h)


class ContextQNetwork(nn.Module):
    """Meta-Q-Learning's Q-network: `window[..., H, F] -> q[..., A]`, reading the last H steps' inputs.

    A GRU over the window (each step's `rl2_inputs`: observation, previous action, reward, done)
    gives the context c; the head reads the current step's input (the window's last row, which
    holds the observation) with c. `context` exposes c: MQL's propensity model is fit on it.

    Attributes:
      num_actions: A, the output size.
      context_size: the GRU's width, the size of c.
      hidden_sizes: the head's hidden `Dense` layers.
      activation: applied after each of them.
    """

    num_actions: int
    context_size: int = 16
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Callable = nn.relu

    def setup(self):
        """Declares the GRU, the head's hidden layers and its output layer (`self.gru`, `self.torso`, `self.head`)."""
        self.gru = nn.RNN(nn.GRUCell(features=self.context_size))
        self.torso = [nn.Dense(width) for width in self.hidden_sizes]
        self.head = nn.Dense(self.num_actions)

    def context(self, window: chex.Array) -> chex.Array:
        """The GRU's output after the window's last step.

        Args:
          window: `[..., H, F]`.

        Returns:
          `[..., context_size]`.
        """
        batch_shape = window.shape[:-2]
        flat = window.reshape((-1,) + window.shape[-2:])
        return self.gru(flat)[:, -1].reshape(batch_shape + (self.context_size,))

    def __call__(self, window: chex.Array) -> chex.Array:
        """Q-values of every action.

        Args:
          window: `[..., H, F]` the inputs of the last H steps, the current one last.

        Returns:
          `[..., A]`.
        """
        x = jnp.concatenate([window[..., -1, :], self.context(window)], axis=-1)
        for layer in self.torso:
            x = self.activation(layer(x))
        return self.head(x)


class _CausalConvBlock(nn.Module):
    """SNAIL's dense block: a kernel-2 causal convolution with dilation d, gated, concatenated.

    `out_t = tanh(a_t) · σ(b_t)`, `(a, b) = W [x_{t-d}, x_t]` (zeros before the sequence), and
    the block returns `[x, out]` along the features.
    """

    dilation: int
    filters: int

    @nn.compact
    def __call__(self, x: chex.Array, cache: chex.Array | None = None, t: chex.Array | None = None):
        """The block over a sequence, or at one step of it.

        Args:
          x: `[L, ..., F]`; with `cache`, step t's `[..., F]`.
          cache: `[L, ..., F]` the block's inputs at the steps before t (rows from t on unread).
          t: the step, with `cache`.

        Returns:
          `[L, ..., F + filters]`; with `cache`, `(cache with row t written, [..., F + filters])`.
        """
        if cache is None:
            shifted = jnp.concatenate([jnp.zeros_like(x[: self.dilation]), x[: x.shape[0] - self.dilation]])
        else:
            cache = jax.lax.dynamic_update_index_in_dim(cache, x, t, axis=0)
            earlier = jax.lax.dynamic_index_in_dim(cache, jnp.maximum(t - self.dilation, 0), keepdims=False)
            shifted = jnp.where(t >= self.dilation, earlier, 0.0)
        gates = nn.Dense(2 * self.filters)(jnp.concatenate([shifted, x], axis=-1))
        out = jnp.concatenate([x, jnp.tanh(gates[..., : self.filters]) * nn.sigmoid(gates[..., self.filters:])],
                              axis=-1)
        return out if cache is None else (cache, out)


class _CausalAttentionBlock(nn.Module):
    """SNAIL's attention block: softmax attention of each step over itself and the steps before,
    its read concatenated to the input."""

    key_size: int
    value_size: int

    @nn.compact
    def __call__(self, x: chex.Array, cache: tuple[chex.Array, chex.Array] | None = None,
                 t: chex.Array | None = None):
        """The block over a sequence, or at one step of it.

        Args:
          x: `[L, ..., F]`; with `cache`, step t's `[..., F]`.
          cache: the keys `[L, ..., key_size]` and values `[L, ..., value_size]` of the steps before t.
          t: the step, with `cache`.

        Returns:
          `[L, ..., F + value_size]`; with `cache`, `(cache with row t written, [..., F + value_size])`.
        """
        queries, keys = nn.Dense(self.key_size)(x), nn.Dense(self.key_size)(x)  # [L, ..., K]
        values = nn.Dense(self.value_size)(x)
        scale = jnp.sqrt(float(self.key_size))
        if cache is None:
            logits = jnp.einsum("l...k,m...k->...lm", queries, keys) / scale
            length = x.shape[0]
            causal = jnp.arange(length)[:, None] >= jnp.arange(length)[None, :]  # step l reads steps m ≤ l
            weights = jax.nn.softmax(jnp.where(causal, logits, -jnp.inf), axis=-1)
            return jnp.concatenate([x, jnp.einsum("...lm,m...v->l...v", weights, values)], axis=-1)
        keys, values = (jax.lax.dynamic_update_index_in_dim(c, new, t, axis=0) for c, new in zip(cache, (keys, values)))
        logits = jnp.einsum("...k,m...k->...m", queries, keys) / scale
        weights = jax.nn.softmax(jnp.where(jnp.arange(keys.shape[0]) <= t, logits, -jnp.inf), axis=-1)
        return (keys, values), jnp.concatenate([x, jnp.einsum("...m,m...v->...v", weights, values)], axis=-1)


class AttentionQNetwork(nn.Module):
    """A SNAIL-style Q-network (Mishra et al. 2018) over a sequence: `inputs[L, ..., F] -> q[L, ..., A]`.

    A `Dense` torso, then two rounds of a causal temporal-convolution stack (dilations 1, 2, 4, …
    up to `max_length`) and a causally masked attention block, then a linear head. The value at
    step t depends on the inputs of steps 0..t only, so a trial's Q-values can be read step by step:
    given the cache of the steps before (`initial_cache`), step t computes one row of each block.

    Attributes:
      num_actions: A, the output size.
      max_length: the longest sequence it is meant for; sets the dilations (1, 2, 4, … < max_length).
      filters: the output features of each convolution.
      key_size: the width of the attention keys and queries.
      value_size: the width of the attention values.
      torso_sizes: the widths of the `Dense` layers before the blocks.
      activation: applied after each torso layer.
    """

    num_actions: int
    max_length: int
    filters: int = 16
    key_size: int = 32
    value_size: int = 32
    torso_sizes: Sequence[int] = (32,)
    activation: Callable = nn.relu

    def _dilations(self) -> list[int]:
        return [2**i for i in range(max(1, (self.max_length - 1).bit_length()))]

    def initial_cache(self, features: int, batch_shape: tuple[int, ...] = ()) -> tuple:
        """The cache of a sequence not yet started, for reading it step by step.

        Args:
          features: F, the width of the inputs.
          batch_shape: the inputs' batch shape `[...]`.

        Returns:
          Per block, zeros: a convolution's inputs `[max_length, ..., F_block]`, an attention's keys
          and values `[max_length, ..., key_size]`, `[max_length, ..., value_size]`.
        """
        def zeros(width):
            return jnp.zeros((self.max_length, *batch_shape, width), jnp.float32)

        width, cache = (self.torso_sizes[-1] if self.torso_sizes else features), []
        for _ in range(2):
            for _ in self._dilations():
                cache.append(zeros(width))
                width += self.filters
            cache.append((zeros(self.key_size), zeros(self.value_size)))
            width += self.value_size
        return tuple(cache)

    @nn.compact
    def __call__(self, inputs: chex.Array, cache: tuple | None = None,
                 t: chex.Array | None = None) -> chex.Array | tuple[tuple, chex.Array]:
        """The Q-values at every step of a sequence, or at its step t from the cache of the steps before.

        Args:
          inputs: `[L, ..., F]`, time first (e.g. `rl2_inputs` of a trial so far), L ≤ `max_length`;
            with `cache`, step t's `[..., F]`.
          cache: from `initial_cache`, or as the previous step returned it; None: the whole sequence.
          t: the step `inputs` is (0-based, < `max_length`), with `cache`.

        Returns:
          `[L, ..., A]` Q-values, row t using inputs 0..t only; with `cache`, `(cache, q[..., A])`
          where `q` equals row t of the whole sequence's (a step costs one row of each block, not a
          pass over the sequence).
        """
        x, blocks, new_cache = inputs, iter(cache or ()), []
        for width in self.torso_sizes:
            x = self.activation(nn.Dense(width)(x))

        def apply(block, x):
            if cache is None:
                return block(x)
            block_cache, x = block(x, next(blocks), t)
            new_cache.append(block_cache)
            return x

        for _ in range(2):
            for dilation in self._dilations():
                x = apply(_CausalConvBlock(dilation, self.filters), x)
            x = apply(_CausalAttentionBlock(self.key_size, self.value_size), x)
        q = nn.Dense(self.num_actions)(x)
        return q if cache is None else (tuple(new_cache), q)
