"""Small shared pieces of the tests."""

import jax
import numpy as np

import metaq_jax as mq

TINY = dict(num_tasks=3, num_envs=2, rollout_length=12, inner_steps=2, hidden_sizes=(16,),
            target_update_period=2)


def tiny_config(**changes) -> mq.MetaConfig:
    return mq.MetaConfig(**{**TINY, **changes})


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def trees_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
