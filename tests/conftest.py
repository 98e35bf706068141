"""Test-wide settings: implicit rank promotion is an error everywhere in the suite."""

import os

os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")

import jax  # noqa: E402  (after the environment is set)

jax.config.update("jax_numpy_rank_promotion", "raise")
