"""Run directories: checked before anything is written, then config, metrics, logs, checkpoints.

A run directory holds
  config.json     the full resolved `MetaConfig`, and the device mesh it ran on as "mesh"
  metrics.csv     one row per logged meta-step (deterministic: no wall-clock columns)
  tensorboard/    a TensorBoard event log of the same scalars and the throughput
  checkpoints/    orbax checkpoints `<step>/` of the whole state (see `metaq_jax.checkpoints`)
  adaptation.png  return vs. inner steps on the held-out tasks (written by `metaq_jax.session`)
  intervals.png   the same report in rliable's style: mean and IQM intervals, performance profiles
"""

import csv
import dataclasses
import json
import logging
import os
import time

from metaq_jax import checkpoints
from metaq_jax.errors import InputError
from metaq_jax.config import SCALE_FIELDS, MetaConfig, without_unread_fields
from metaq_jax.types import Metrics

CONFIG, METRICS, TENSORBOARD, CHECKPOINTS, PLOT, INTERVALS = (
    "config.json", "metrics.csv", "tensorboard", "checkpoints", "adaptation.png", "intervals.png")
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
                raise InputError(f"RunOptions.{name} = {value!r}: must be a positive integer")


def path(run_dir: str, name: str) -> str:
    """The absolute path of a run directory's entry.

    Args:
      run_dir: the run directory.
      name: one of CONFIG, METRICS, TENSORBOARD, CHECKPOINTS, PLOT, INTERVALS.

    Returns:
      The absolute path.
    """
    return os.path.join(os.path.abspath(run_dir), name)


def default_run_dir(root: str = "runs") -> str:
    """A new timestamped folder name under `root`, not yet created.

    Args:
      root: the parent folder.

    Returns:
      `root/YYYYmmdd-HHMMSS`, with `-2`, `-3`, ... appended when that exists.
    """
    base = os.path.join(root, time.strftime("%Y%m%d-%H%M%S"))
    candidate, n = base, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def load_config_file(file: str) -> dict:
    """The fields stored in a config.json.

    Args:
      file: a config.json written by a run (its `mesh` entry is dropped).

    Returns:
      `{field: value}`, not yet validated, less the fields the stored algo's kind does not read
      (`config.without_unread_fields`).

    Raises:
      InputError: the file cannot be read, is not JSON, or holds no JSON object.
    """
    try:
        with open(file) as f:
            values = json.load(f)
    except OSError as error:
        raise InputError(f"config file {file}: cannot be read ({error.strerror}); give a saved config.json") from None
    except json.JSONDecodeError as error:
        raise InputError(f"config file {file}: not valid JSON (line {error.lineno}); give a saved config.json") from None
    if not isinstance(values, dict):
        raise InputError(f"config file {file}: must hold a JSON object of MetaConfig fields")
    values.pop(MESH, None)
    return without_unread_fields(values)


def stored_config(run_dir: str) -> MetaConfig | None:
    """The config a run directory holds.

    Args:
      run_dir: the run directory.

    Returns:
      Its `MetaConfig`, or None when it holds no config.json.

    Raises:
      InputError: config.json is unreadable or holds invalid values.
    """
    file = path(run_dir, CONFIG)
    if not os.path.exists(file):
        return None
    return MetaConfig.from_dict(load_config_file(file))


def check_writable(run_dir: str) -> None:
    """Check that `run_dir` is, or can be created as, a writable folder; writes nothing.

    Args:
      run_dir: the run directory.

    Returns:
      Nothing: returning at all means `run_dir` can be written.

    Raises:
      InputError: it is a file, or it cannot be written.
    """
    target = os.path.abspath(run_dir)
    if os.path.exists(target) and not os.path.isdir(target):
        raise InputError(f"run dir {run_dir}: exists and is not a directory; give a folder")
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"run dir {run_dir}: cannot be written ({existing} is not a writable folder); "
                         "give a folder you can write to")


def config_changes(stored: MetaConfig, config: MetaConfig) -> list[str]:
    """`field=value` of `config` for every field where it differs from `stored`, but `SCALE_FIELDS`
    (they change how a run is laid out on the machine, not what it computes).

    Args:
      stored: the config a run directory holds.
      config: the config to run.

    Returns:
      `field=value` strings in `config`'s field order; empty when no such field differs.
    """
    before = stored.to_dict()
    return [f"{k}={v!r}" for k, v in config.to_dict().items() if before[k] != v and k not in SCALE_FIELDS]


def check_run_dir(run_dir: str, config: MetaConfig, *, resume: bool) -> int | None:
    """Check that `config` may run in `run_dir`; reads only, so a refused run changes nothing.

    Args:
      run_dir: the run directory.
      config: the config to run (fields in `SCALE_FIELDS` may differ from the stored one).
      resume: whether the run continues from its latest checkpoint.

    Returns:
      The checkpoint step to resume from, or None for a new run.

    Raises:
      InputError: the folder is unwritable, holds another config, holds a run (without
        `resume`) or holds no checkpoint (with `resume`).
    """
    check_writable(run_dir)
    stored = stored_config(run_dir)
    changed = [] if stored is None else config_changes(stored, config)
    if changed:
        raise InputError(f"run dir {run_dir} holds another config (differs in {', '.join(changed)}); "
                         "resume it with its own config or give another --run-dir")
    step = checkpoints.latest_step(path(run_dir, CHECKPOINTS))
    if resume and step is None:
        raise InputError(f"--resume: run dir {run_dir} holds no checkpoint; "
                         "start it without --resume or give a run dir that has one")
    if not resume and step is not None:
        raise InputError(f"run dir {run_dir} already holds a run (checkpoint {step}); "
                         "pass --resume to continue it or give another --run-dir")
    return step


def write_atomic(file: str, text: str) -> None:
    """Replace `file` with `text` all at once, so a crash leaves the old or the new file.

    Args:
      file: the file to replace (`file + ".tmp"` is written first).
      text: its new contents.

    Returns:
      Nothing; writes `file`.
    """
    with open(file + ".tmp", "w") as f:
        f.write(text)
    os.replace(file + ".tmp", file)


def write_config(run_dir: str, config: MetaConfig, mesh: dict[str, int]) -> None:
    """Write config.json (atomically): `config` and the shape of the mesh it runs on.

    Args:
      run_dir: the run directory, which exists.
      config: the resolved config.
      mesh: the mesh's shape, e.g. `{"task": 4}`.

    Returns:
      Nothing; writes `run_dir`/config.json.
    """
    write_atomic(path(run_dir, CONFIG), json.dumps({**config.to_dict(), MESH: mesh}, indent=2) + "\n")


def keep_metrics_before(run_dir: str, step: int) -> None:
    """Cut metrics.csv to its header and the complete rows of meta-steps below `step`.

    A run killed after logging a row but before checkpointing it logs that row again on
    resume; dropping it here keeps each step once. A half-written last line is dropped too.

    Args:
      run_dir: the run directory.
      step: the meta-step the run resumes at (0 for a new run: the header alone).

    Returns:
      Nothing; rewrites `run_dir`/metrics.csv (atomically).
    """
    file = path(run_dir, METRICS)
    lines = []
    if os.path.exists(file):
        with open(file) as f:
            lines = [line for line in f.readlines()[1:]
                     if line.endswith("\n") and int(line.split(",", 1)[0]) < step]
    write_atomic(file, ",".join(METRIC_COLUMNS) + "\n" + "".join(lines))


class MetricsLog:
    """metrics.csv and the TensorBoard log of a run, written together by one `write` call.

    Opening it cuts metrics.csv to the rows before `start` (see `keep_metrics_before`) and hides
    the TensorBoard events a killed run logged from `start` on.
    """

    def __init__(self, run_dir: str, start: int):
        keep_metrics_before(run_dir, start)
        self._file = open(path(run_dir, METRICS), "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        # imported here: tensorboardX imports torch where it is installed (1.3 s), and only a run logs
        from tensorboardX import SummaryWriter

        self._tensorboard = SummaryWriter(path(run_dir, TENSORBOARD), purge_step=start or None)
        # A diverged step is logged on purpose (its row names it); tensorboardX's warning would repeat it.
        self._quiet = lambda record: False
        logging.getLogger("tensorboardX.x2num").addFilter(self._quiet)

    def write(self, step: int, scalars: dict[str, float], *, volatile: dict[str, float] | None = None) -> None:
        """Log meta-step `step`: a metrics.csv row and a TensorBoard point per scalar.

        Args:
          step: the meta-step (0-based).
          scalars: a value for every column of `METRIC_COLUMNS` but `step`; Python floats are
            written exactly (`repr`), so equal runs give equal files.
          volatile: values that differ between equal runs (wall-clock rates), as
            `{"group/name": value}`: TensorBoard only.

        Returns:
          Nothing; appends to metrics.csv (flushed) and the TensorBoard log.
        """
        self._csv.writerow({"step": step, **scalars})
        self._file.flush()  # a killed process keeps what was flushed
        for name, value in scalars.items():
            self._tensorboard.add_scalar(f"train/{name}", value, step)
        for name, value in (volatile or {}).items():
            self._tensorboard.add_scalar(name, value, step)

    def close(self) -> None:
        """Close both files.

        Returns:
          Nothing; also removes the tensorboardX warning filter.
        """
        self._file.close()
        self._tensorboard.close()
        logging.getLogger("tensorboardX.x2num").removeFilter(self._quiet)
