"""Checkpoints: the latest complete one as orbax finds it; damage refused in one line, with the
process's unraisable hook and asyncio's log left as they were."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp

from metaq_jax import checkpoints
from metaq_jax.types import MetaState


def _state(step: int) -> MetaState:
    params = {"w": jnp.arange(64.0) * step, "b": jnp.ones(3)}
    return MetaState(params=params, target_params=params, opt_state=(), step=jnp.asarray(step, jnp.int32))


def _save(directory, *steps):
    mgr = checkpoints.manager(str(directory), keep_last=5)
    for step in steps:
        checkpoints.save(mgr, _state(step), jax.random.key(7))
    mgr.wait_until_finished()
    mgr.close()


def test_latest_step_is_the_newest_complete_checkpoint(tmp_path):
    assert checkpoints.latest_step(str(tmp_path / "absent")) is None
    _save(tmp_path, 2, 5)
    os.makedirs(tmp_path / "9.orbax-checkpoint-tmp-123")  # a write that never finished
    assert checkpoints.latest_step(str(tmp_path)) == 5
    restored = checkpoints.restore(str(tmp_path), 5, _state(0), jax.random.key(0))
    assert restored.step == 5 and float(restored.state.params["w"][1]) == 5.0
    assert jax.random.key_data(restored.run_key).tolist() == jax.random.key_data(jax.random.key(7)).tolist()


SCRIPT = textwrap.dedent("""
    import logging, os, sys
    import jax, jax.numpy as jnp
    from metaq_jax import checkpoints
    from metaq_jax.errors import InputError
    from metaq_jax.types import MetaState
    directory = sys.argv[1]
    params = {"w": jnp.zeros(64), "b": jnp.zeros(3)}
    template = MetaState(params=params, target_params=params, opt_state=(), step=jnp.zeros((), jnp.int32))
    hook = sys.unraisablehook
    try:
        checkpoints.restore(directory, 3, template, jax.random.key(0))
    except InputError as error:
        print(error)
    assert sys.unraisablehook is hook, "the restore left its hook in place"
    assert not logging.getLogger("asyncio").filters, "the restore left its log filter in place"
""")


def test_a_damaged_checkpoint_is_refused_quietly_and_the_hook_restored(tmp_path):
    _save(tmp_path, 3)
    data = tmp_path / "3" / "payload" / "d"
    for name in os.listdir(data):  # flip a byte of every data file
        raw = bytearray((data / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (data / name).write_bytes(bytes(raw))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"checkpoint {tmp_path}/3 is unreadable (ValueError); it is corrupt")
    assert result.stderr == ""  # no tracebacks from the reads in flight
