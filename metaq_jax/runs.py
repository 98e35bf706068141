"""Run directories: checked before anything is written, then config, metrics, logs, checkpoints.

A run directory holds
  config.json     the full resolved `MetaConfig`, and the device mesh it ran on as "mesh"
  metrics.csv     one row per logged meta-step (deterministic: no wall-clock columns)
  tensorboard/    a TensorBoard event log of the same scalars and the throughput
  checkpoints/    orbax checkpoints `<step>/` of the whole state (see `metaq_jax.checkpoints`)
  adaptation.png  return vs. inner steps on the held-out tasks (written by `metaq_jax.session`)
"""

import dataclasses
import json
import os
import time
from typing import IO

import numpy as np

from metaq_jax import checkpoints
from metaq_jax.config import SCALE_FIELDS, MetaConfig
from metaq_jax.types import Metrics

CONFIG, METRICS, TENSORBOARD, CHECKPOINTS, PLOT = (
    "config.json", "metrics.csv", "tensorboard", "checkpoints", "adaptation.png")
METRIC_COLUMNS = ("step", "env_steps", *Metrics._fields)
MESH = "mesh"  # the key of config.json that records the mesh: a result of `devices`, not a setting


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run keeps its work; none of these change the trained parameters."""

    checkpoint_every: int = 100  # S: meta-steps between checkpoints (one is also kept at the end)
    keep_last: int = 3  # N: checkpoints kept on disk
    log_every: int = 1  # meta-steps between rows of metrics.csv and TensorBoard points
    skip_nonfinite: bool = False  # skip an update with non-finite loss or gradient instead of stopping

    def __post_init__(self):
        for name in ("checkpoint_every", "keep_last", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RunOptions.{name} = {value!r}: must be a positive integer")


def path(run_dir: str, name: str) -> str:
    """The absolute path of `name` (one of CONFIG, METRICS, ...) in `run_dir`."""
    return os.path.join(os.path.abspath(run_dir), name)


def default_run_dir(root: str = "runs") -> str:
    """A new timestamped folder under `root` that does not exist yet."""
    base = os.path.join(root, time.strftime("%Y%m%d-%H%M%S"))
    candidate, n = base, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def load_config_file(file: str) -> dict:
    """The fields stored in a config.json, as a dict; `ValueError` in one line otherwise."""
    try:
        with open(file) as f:
            values = json.load(f)
    except OSError as error:
        raise ValueError(f"config file {file}: cannot be read ({error.strerror}); give a saved config.json") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {file}: not valid JSON (line {error.lineno}); give a saved config.json") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {file}: must hold a JSON object of MetaConfig fields")
    values.pop(MESH, None)
    return values


def stored_config(run_dir: str) -> MetaConfig | None:
    """The config a run directory holds, or None when it holds none."""
    file = path(run_dir, CONFIG)
    if not os.path.exists(file):
        return None
    return MetaConfig.from_dict(load_config_file(file))


def check_writable(run_dir: str) -> None:
    """`ValueError` unless `run_dir` is, or can be created as, a writable folder. Writes nothing."""
    target = os.path.abspath(run_dir)
    if os.path.exists(target) and not os.path.isdir(target):
        raise ValueError(f"run dir {run_dir}: exists and is not a directory; give a folder")
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"run dir {run_dir}: cannot be written ({existing} is not a writable folder); "
                         "give a folder you can write to")


def check_run_dir(run_dir: str, config: MetaConfig, *, resume: bool) -> int | None:
    """Check that `config` may run in `run_dir`; the checkpoint step to resume from, or None.

    Raises `ValueError` naming the problem; reads only, so a refused run changes nothing.
    """
    check_writable(run_dir)
    stored = stored_config(run_dir)
    changed = [] if stored is None else [f"{k}={v!r}" for k, v in config.to_dict().items()
                                         if stored.to_dict()[k] != v and k not in SCALE_FIELDS]
    if changed:
        raise ValueError(f"run dir {run_dir} holds another config (differs in {', '.join(changed)}); "
                         "resume it with its own config or give another --run-dir")
    step = checkpoints.latest_step(path(run_dir, CHECKPOINTS))
    if resume and step is None:
        raise ValueError(f"--resume: run dir {run_dir} holds no checkpoint; "
                         "start it without --resume or give a run dir that has one")
    if not resume and step is not None:
        raise ValueError(f"run dir {run_dir} already holds a run (checkpoint {step}); "
                         "pass --resume to continue it or give another --run-dir")
    return step


def _write_atomic(file: str, text: str) -> None:
    """Replace `file` with `text` all at once, so a crash leaves the old or the new file."""
    with open(file + ".tmp", "w") as f:
        f.write(text)
    os.replace(file + ".tmp", file)


def write_config(run_dir: str, config: MetaConfig, mesh: dict[str, int]) -> None:
    """config.json: `config` and the shape of the mesh it runs on, e.g. `{"task": 4}`."""
    _write_atomic(path(run_dir, CONFIG), json.dumps({**config.to_dict(), MESH: mesh}, indent=2) + "\n")


def format_row(step: int, env_steps: int, metrics: Metrics) -> str:
    """One metrics.csv line; `repr` of each float is exact, so equal runs give equal bytes."""
    values = [repr(float(np.asarray(v))) for v in metrics]
    return ",".join([str(step), str(env_steps), *values]) + "\n"


def keep_metrics_before(run_dir: str, step: int) -> None:
    """Cut metrics.csv to its header and the complete rows of meta-steps below `step`.

    A run killed after logging a row but before checkpointing it logs that row again on
    resume; dropping it here keeps each step once. A half-written last line is dropped too.
    """
    file = path(run_dir, METRICS)
    lines = []
    if os.path.exists(file):
        with open(file) as f:
            lines = [line for line in f.readlines()[1:]
                     if line.endswith("\n") and int(line.split(",", 1)[0]) < step]
    _write_atomic(file, ",".join(METRIC_COLUMNS) + "\n" + "".join(lines))


def open_metrics(run_dir: str) -> IO[str]:
    """metrics.csv for appending rows (after `keep_metrics_before` wrote its header)."""
    return open(path(run_dir, METRICS), "a")
