"""Test-wide settings: implicit rank promotion is an error everywhere in the suite, XLA compiles
quickly rather than well, and one XLA compilation cache serves the whole run — this process, the xdist workers it starts (which
inherit its environment) and every subprocess they start — so a computation compiled by one
test (the same tiny learner, a CLI run) is not compiled again by another. The slowest modules
are collected first, so that the two workers, given whole modules in order, finish together."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")
_CACHE = None if "JAX_COMPILATION_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="metaq-test-xla-cache-")
if _CACHE is not None:  # the first process of the run; the workers and subprocesses share its cache
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# the suite's configs are tiny: compiling is most of its time. XLA's backend at level 0 compiles in
# half the time, and its older CPU emitters (not the fusion emitters) in half again: 2.8 → 1.1 s for
# a tiny maml update, 5.1 → 2.8 s for pearl's (no test measures speed; subprocesses inherit both,
# tests/helpers.device_env keeps them)
for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()
# reports' bootstrap intervals: coarse and quick; tests/test_stats.py checks them at full size
os.environ.setdefault("METAQ_BOOTSTRAP_REPS", "100")

import jax  # noqa: E402  (after the environment is set)

jax.config.update("jax_numpy_rank_promotion", "raise")

SLOWEST_FIRST = ("test_population.py", "test_cli.py", "test_distributed.py", "test_benchmarks.py", "test_session.py",
                 "test_mql.py", "test_oracle.py")  # the longest modules of the last measured run, longest first


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FIRST)))  # stable: modules keep their order


def pytest_sessionfinish(session, exitstatus):
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)
