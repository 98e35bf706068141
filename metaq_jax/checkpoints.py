"""Orbax checkpoints of a run: the whole `MetaState` plus the run key, verified on restore.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a crash
mid-write leaves the previous checkpoint the latest one. A SHA-256 digest of every array is
stored beside the state and checked on restore, so a corrupt or truncated checkpoint is refused
rather than silently resumed from.
"""

import contextlib
import gc
import hashlib
import logging
import os
import sys
import time
from typing import NamedTuple

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp

from metaq_jax import distributed
from metaq_jax.errors import InputError
from metaq_jax.types import MetaState


class NonFiniteError(RuntimeError):
    """Training produced a NaN or an infinity; the message names the step and the last checkpoint."""


class Restored(NamedTuple):
    """A checkpoint read back: the state and the run key it was trained with."""

    step: int  # meta-updates done (== state.step)
    state: MetaState
    run_key: chex.PRNGKey  # typed key; per-step keys are fold_in(run_key, step)


def tree_digest(tree: chex.ArrayTree) -> str:
    """SHA-256 over the shapes, dtypes and bytes of every leaf, in tree order.

    Args:
      tree: a pytree of arrays (device or host).

    Returns:
      The hex digest.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def is_finite(tree: chex.ArrayTree) -> bool:
    """Whether every floating leaf of `tree` is finite.

    Args:
      tree: a pytree of arrays.

    Returns:
      True when no floating leaf holds a NaN or an infinity.
    """
    return all(bool(np.isfinite(leaf).all()) for leaf in jax.tree.leaves(jax.device_get(tree))
               if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


class NoCheckpoints:
    """The checkpoint manager of a process that writes none (every process but 0 of a multi-host run)."""

    def save(self, step: int, args: ocp.args.CheckpointArgs) -> None:
        """Write nothing.

        Args:
          step: ignored.
          args: ignored.

        Returns:
          None.
        """
        del step, args

    def latest_step(self) -> None:
        """No checkpoint is written here, so none is the latest.

        Returns:
          None.
        """
        return None

    def wait_until_finished(self) -> None:
        """Nothing is in flight.

        Returns:
          None.
        """

    def close(self) -> None:
        """Nothing to close.

        Returns:
          None.
        """


def manager(directory: str, *, keep_last: int) -> ocp.CheckpointManager:
    """A checkpoint manager over `directory`, created if absent; only this process writes.

    The saved state is a host copy of the whole state (`save` gathers what is split across
    processes), so the other processes of a multi-host run write nothing (they use `NoCheckpoints`).

    Args:
      directory: the checkpoint folder (made absolute: orbax fails on a relative one).
      keep_last: how many of the newest checkpoints to keep.

    Returns:
      The orbax `CheckpointManager`.
    """
    os.makedirs(directory, exist_ok=True)  # orbax refuses to create it with `active_processes`
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep_last, create=False,
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0}))
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mgr: ocp.CheckpointManager, state: MetaState, run_key: chex.PRNGKey) -> None:
    """Start writing `state` and `run_key` as checkpoint `state.step` (asynchronously).

    Args:
      mgr: from `manager`.
      state: the whole state, on one device or a mesh (split across processes too).
      run_key: the run's typed key (saved as its key data).

    Returns:
      Nothing; the write goes on in the background (`mgr.wait_until_finished` waits for it).

    Raises:
      NonFiniteError: the state holds a NaN or an infinity; a checkpoint is always one worth
        resuming from.
    """
    # host copies, whole: a multi-host mesh's arrays are written once, by this process alone
    payload = distributed.host_copy({"state": state, "run_key": jax.random.key_data(run_key)})
    step = int(np.max(payload["state"].step))  # a population's members share their step
    if not is_finite(payload["state"]):
        raise NonFiniteError(f"refusing to checkpoint a non-finite state at meta-step {step}")
    meta = {"step": step, "sha256": tree_digest(payload)}
    mgr.save(step, args=ocp.args.Composite(payload=ocp.args.StandardSave(payload),
                                           meta=ocp.args.JsonSave(meta)))


def latest_step(directory: str) -> int | None:
    """The step of the newest complete checkpoint in `directory`, as orbax finds it; reads only.

    Args:
      directory: a run's checkpoint folder (it need not exist).

    Returns:
      The step, or None when there is no complete checkpoint.
    """
    if not os.path.isdir(directory):
        return None
    options = ocp.CheckpointManagerOptions(read_only=True, create=False)
    with ocp.CheckpointManager(os.path.abspath(directory), options=options) as reader:
        return reader.latest_step()


class _LostReadsFilter(logging.Filter):
    """Drops asyncio's 'Task (or Future) exception was never retrieved' reports of the reads a
    failed restore abandoned, noting when each came."""

    def __init__(self, last: list[float]):
        super().__init__()
        self.last = last

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to log `record`; notes the time of each one dropped.

        Args:
          record: a record of the asyncio logger.

        Returns:
          False for a report of a task's exception never retrieved, else True.
        """
        if record.getMessage().partition("\n")[0].endswith("exception was never retrieved"):
            self.last[0] = time.monotonic()
            return False
        return True


@contextlib.contextmanager
def _abandoned_reads_quiet(quiet_s: float = 0.25, limit_s: float = 3.0):
    """Drop the errors of reads still in flight when a restore fails.

    Orbax stops at the first damaged array and closes its event loop. The other reads then end
    in one of two ways, within milliseconds, each of which would print a traceback: tensorstore
    reports them into the closed loop as unraisable 'Event loop is closed' errors, or their
    tasks, failed and never awaited, are logged by asyncio when collected. Both are dropped
    only inside this block: after a failure it collects the abandoned tasks and waits until
    neither has come for `quiet_s` (at most `limit_s`), then puts the old hook back and removes
    the log filter. Within milliseconds on an idle machine; the window is wider because once,
    beside other jobs on both cores, a read's report came after a 50 ms lull.
    """
    previous, last = sys.unraisablehook, [time.monotonic()]
    lost_reads = _LostReadsFilter(last)

    def hook(unraisable):
        if unraisable.exc_type is RuntimeError and "Event loop is closed" in str(unraisable.exc_value):
            last[0] = time.monotonic()
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addFilter(lost_reads)
    try:
        yield
    except BaseException:
        start = last[0] = time.monotonic()
        while time.monotonic() - last[0] < quiet_s and time.monotonic() - start < limit_s:
            gc.collect()  # failed tasks are reported when collected: collect them while filtered
            time.sleep(quiet_s / 5)
        raise
    finally:
        sys.unraisablehook = previous
        asyncio_logger.removeFilter(lost_reads)


def restore(directory: str, step: int, template: MetaState, template_key: chex.PRNGKey) -> Restored:
    """Read checkpoint `step` into the structure of `template` and verify its digest.

    Args:
      directory: the checkpoint folder.
      step: the checkpoint to read.
      template: a state of the run's structure, shapes and dtypes (e.g. the initial one).
      template_key: a typed key of the run key's implementation.

    Returns:
      `Restored(step, state, run_key)`, host arrays.

    Raises:
      InputError: the checkpoint cannot be read (corrupt, truncated, missing files) or fails
        its digest.
    """
    path = os.path.join(os.path.abspath(directory), str(step))
    template_payload = {"state": template, "run_key": jax.random.key_data(template_key)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_payload)
    try:
        with _abandoned_reads_quiet(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as reader:
            loaded = reader.restore(path, args=ocp.args.Composite(
                payload=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except (ValueError, OSError) as error:  # what tensorstore and orbax raise for damaged or missing files
        raise InputError(f"checkpoint {path} is unreadable ({type(error).__name__}); "
                         "it is corrupt or truncated: delete it to resume from an earlier one") from None
    # Orbax returns plain tuples for NamedTuples: put the leaves back into the template.
    payload = jax.tree.unflatten(jax.tree.structure(template_payload), jax.tree.leaves(loaded["payload"]))
    intact = loaded["meta"]["sha256"] == tree_digest(payload)
    if not intact:
        raise InputError(f"checkpoint {path} fails its checksum; it is corrupt: "
                         "delete it to resume from an earlier one")
    return Restored(step=step, state=payload["state"], run_key=jax.random.wrap_key_data(payload["run_key"]))
