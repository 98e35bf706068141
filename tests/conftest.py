"""Test-wide settings: implicit rank promotion is an error everywhere in the suite, and one XLA
compilation cache serves the whole run — this process and every subprocess it starts — so a
computation compiled by one test (the same tiny learner, a CLI run) is not compiled again by
another."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")
_CACHE = tempfile.mkdtemp(prefix="metaq-test-xla-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402  (after the environment is set)

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
