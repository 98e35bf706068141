"""`import metaq_jax` does nothing but import: no backend, no join, no exit, no global setting.

Each check runs in a fresh interpreter, since this test process has long started JAX.
"""

import os
import subprocess
import sys
import textwrap

import metaq_jax as mq

SCRIPT = textwrap.dedent("""
    import os, sys
    import matplotlib
    raw_backend = lambda: dict.__getitem__(matplotlib.rcParams, "backend")  # get_backend() would resolve it
    backend, hook = raw_backend(), sys.unraisablehook
    import metaq_jax
    from jax._src import xla_bridge
    assert not xla_bridge.backends_are_initialized(), "the import started JAX's backend"
    heavy = ("gymnax", "tensorboardX", "torch")  # torch: tensorboardX imports it where installed (1.3 s)
    started = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m == "matplotlib.pyplot")
    assert not started, started[:5]
    assert raw_backend() == backend and sys.unraisablehook is hook
    metaq_jax.list_families(), metaq_jax.MetaConfig()  # names and configs need no family module
    assert not xla_bridge.backends_are_initialized(), "listing families started JAX's backend"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=3"  # set after the import
    import jax
    print(jax.device_count())
""")


def _run(**env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")}
    return subprocess.run([sys.executable, "-c", SCRIPT], env={**environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_import_starts_no_backend_and_later_xla_flags_still_apply():
    result = _run()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3"]


def test_import_joins_no_run_even_when_the_environment_describes_one():
    """An address nobody listens on: joining would block or exit; importing must do neither."""
    result = _run(JAX_COORDINATOR_ADDRESS="127.0.0.1:1", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3"]


def test_one_name_one_thing():
    """`train` is the function; its module is `training`."""
    assert callable(mq.train) and mq.train is mq.training.train
    assert callable(mq.training.step_key)
    assert mq.cartpole_params is mq.tasks.cartpole_params  # lazily imported, the same function
