"""Orbax checkpoints of a run: the whole `MetaState` plus the run key, verified on restore.

Orbax writes each checkpoint into a temporary folder and renames it when complete, so a crash
mid-write leaves the previous checkpoint the latest one. A SHA-256 digest of every array is
stored beside the state and checked on restore, so a corrupt or truncated checkpoint is refused
rather than silently resumed from.
"""

import hashlib
import os
import sys
from typing import NamedTuple

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp

from metaq_jax.types import MetaState


class NonFiniteError(RuntimeError):
    """Training produced a NaN or an infinity; the message names the step and the last checkpoint."""


class Restored(NamedTuple):
    """A checkpoint read back: the state and the run key it was trained with."""

    step: int  # meta-updates done (== state.step)
    state: MetaState
    run_key: chex.PRNGKey  # typed key; per-step keys are fold_in(run_key, step)


def tree_digest(tree) -> str:
    """SHA-256 over the shapes, dtypes and bytes of every leaf, in tree order."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def is_finite(tree) -> bool:
    """True when no floating leaf of `tree` holds a NaN or an infinity."""
    return all(bool(np.isfinite(leaf).all()) for leaf in jax.tree.leaves(jax.device_get(tree))
               if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


class NoCheckpoints:
    """The checkpoint manager of a process that writes none (every process but 0 of a multi-host run)."""

    def save(self, step, args) -> None:
        del step, args

    def latest_step(self) -> None:
        return None

    def wait_until_finished(self) -> None:
        pass

    def close(self) -> None:
        pass


def manager(directory: str, *, keep_last: int) -> ocp.CheckpointManager:
    """A checkpoint manager over `directory`, which must be absolute (orbax fails otherwise).

    Only this process writes: the saved state is a host copy of a replicated one, so the other
    processes of a multi-host run need not take part (they use `NoCheckpoints`).
    """
    os.makedirs(directory, exist_ok=True)  # orbax refuses to create it with `active_processes`
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep_last, create=False,
        multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0}))
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mgr: ocp.CheckpointManager, state: MetaState, run_key: chex.PRNGKey) -> None:
    """Start writing `state` as checkpoint `state.step` (asynchronously).

    Raises `NonFiniteError` for a non-finite state: a checkpoint is always one worth resuming from.
    """
    step = int(state.step)
    if not is_finite(state):
        raise NonFiniteError(f"refusing to checkpoint a non-finite state at meta-step {step}")
    # host copies: replicated arrays of a multi-host mesh are written once, by this process alone
    payload = jax.device_get({"state": state, "run_key": jax.random.key_data(run_key)})
    meta = {"step": step, "sha256": tree_digest(payload)}
    mgr.save(step, args=ocp.args.Composite(payload=ocp.args.StandardSave(payload),
                                           meta=ocp.args.JsonSave(meta)))


def latest_step(directory: str) -> int | None:
    """The step of the newest complete checkpoint in `directory`, or None; reads only."""
    if not os.path.isdir(directory):
        return None
    steps = [int(name) for name in os.listdir(directory)
             if name.isdigit() and os.path.isfile(os.path.join(directory, name, "commit_success.txt"))]
    return max(steps, default=None)


def _silence_closed_loop_callbacks() -> None:
    """Drop the 'Event loop is closed' errors of reads still in flight when a restore failed.

    Orbax stops at the first damaged array and closes its event loop; tensorstore then reports
    the other reads into the closed loop as unraisable errors, which would print a traceback.
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        if not (unraisable.exc_type is RuntimeError and "Event loop is closed" in str(unraisable.exc_value)):
            previous(unraisable)

    sys.unraisablehook = hook


def restore(directory: str, step: int, template: MetaState, template_key: chex.PRNGKey) -> Restored:
    """Read checkpoint `step` into the structure of `template` and verify its digest.

    Raises `ValueError` naming the checkpoint when it cannot be read or does not match.
    """
    path = os.path.join(os.path.abspath(directory), str(step))
    template_payload = {"state": template, "run_key": jax.random.key_data(template_key)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_payload)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as reader:
            loaded = reader.restore(path, args=ocp.args.Composite(
                payload=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        # Orbax returns plain tuples for NamedTuples: put the leaves back into the template.
        payload = jax.tree.unflatten(jax.tree.structure(template_payload),
                                     jax.tree.leaves(loaded["payload"]))
        intact = loaded["meta"]["sha256"] == tree_digest(payload)
    except Exception as error:  # orbax and tensorstore raise many types for a damaged file
        _silence_closed_loop_callbacks()
        raise ValueError(f"checkpoint {path} is unreadable ({type(error).__name__}); "
                         "it is corrupt or truncated: delete it to resume from an earlier one") from None
    if not intact:
        raise ValueError(f"checkpoint {path} fails its checksum; it is corrupt: "
                         "delete it to resume from an earlier one")
    return Restored(step=step, state=payload["state"], run_key=jax.random.wrap_key_data(payload["run_key"]))
