"""A sweep: a population (seeds × hyperparameters) trained in one run directory, as `metaq train`
trains one learner — the same config.json, checkpoints and exact resume — plus per member

  members/<i>/metrics.csv   its meta-steps, in `metaq train`'s format
  members/<i>/tensorboard/  its TensorBoard log (one run per member in TensorBoard)
  sweep.json                every member's seed and values; at the end its final metrics and meta-test
  sweep.png                 the meta-test's trial total against each swept field
"""

import json
import math
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from matplotlib.figure import Figure

from metaq_jax import checkpoints, distributed, population, runs, stats
from metaq_jax.checkpoints import NonFiniteError
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.evaluate import LEARNED
from metaq_jax.population import HYPERPARAMS, Member, Population, PopulationLearner
from metaq_jax.protocol import test_sizes
from metaq_jax.session import last_good
from metaq_jax.tasks import make_family
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.types import Metrics

SWEEP, SWEEP_PLOT, MEMBERS = "sweep.json", "sweep.png", "members"


def _number(field: str, text: str, item: str) -> float | int:
    """One value of `field` from the command line, as the field's type."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--grid {item}: {text!r} is not a number") from None
    if HYPERPARAMS[field] == jnp.int32:
        if value != int(value):
            raise InputError(f"--grid {item}: {field} takes integers, got {text!r}")
        return int(value)
    return value


def _field(flag: str, item: str) -> tuple[str, str]:
    """`(field, rest)` of `field=rest`, the field one a member may vary."""
    field, sep, rest = item.partition("=")
    if not sep or not field:
        raise InputError(f"{flag} {item}: must be field=values, e.g. inner_lr=0.05,0.1")
    if field not in HYPERPARAMS:
        known = field in {f for f in MetaConfig.__dataclass_fields__}
        why = "changes array shapes or the compiled program" if known else "is not a MetaConfig field"
        raise InputError(f"{flag} {item}: {field} {why}; a sweep varies {', '.join(HYPERPARAMS)}")
    return field, rest


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """`--grid field=v1,v2,...` flags as `{field: [values]}`.

    Args:
      items: the flags' values, e.g. `("inner_lr=0.05,0.1", "gamma=0,0.2")`.

    Returns:
      `{field: values}` in the order given.

    Raises:
      InputError: not `field=values`, a field no member may vary, a field given twice, no
        values, or a value that is not a number (an integer for `target_update_period`).
    """
    grid = {}
    for item in items:
        field, text = _field("--grid", item)
        if field in grid:
            raise InputError(f"--grid {item}: {field} is given twice; list its values once, comma-separated")
        if not text.strip():
            raise InputError(f"--grid {item}: no values; give {field}=v1,v2,...")
        grid[field] = [_number(field, value.strip(), item) for value in text.split(",")]
    return grid


def random_members(seeds: Sequence[int], ranges: Sequence[str], count: int, seed: int) -> list[Member]:
    """`count` random draws of `--range field=low:high[:log]` values, each with every seed.

    Args:
      seeds: the training seeds.
      ranges: e.g. `("inner_lr=0.01:1:log", "gamma=0:0.5")`: uniform, or log-uniform with `:log`;
        `target_update_period` is rounded to an integer.
      count: N, draws.
      seed: seeds the draws (numpy), so a sweep can be rerun.

    Returns:
      `len(seeds) × count` members, seeds varying slowest.

    Raises:
      InputError: a malformed range, a field no member may vary, or `count` < 1.
    """
    if not isinstance(count, int) or count < 1:
        raise InputError(f"--random = {count!r}: must be a positive integer")
    if not ranges:
        raise InputError("--random needs at least one --range field=low:high")
    rng, draws = np.random.default_rng(seed), {}
    for item in ranges:
        field, text = _field("--range", item)
        parts = text.split(":")
        log = len(parts) == 3 and parts[2] == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise InputError(f"--range {item}: must be {field}=low:high or {field}=low:high:log")
        low, high = (_number(field, p.strip(), item) for p in parts[:2])
        if not low <= high or (log and low <= 0):
            raise InputError(f"--range {item}: needs low <= high{' and low > 0 for :log' if log else ''}")
        values = (np.exp(rng.uniform(math.log(low), math.log(high), count)) if log
                  else rng.uniform(low, high, count))
        draws[field] = [int(round(v)) if HYPERPARAMS[field] == jnp.int32 else float(v) for v in values]
    return [{"seed": s, **{f: v[i] for f, v in draws.items()}} for s in seeds for i in range(count)]


class PreparedSweep(NamedTuple):
    """A checked sweep, not yet started: nothing has been written to `run_dir`."""

    config: MetaConfig
    run_dir: str
    family: TaskFamily
    learner: PopulationLearner
    population: Population  # initial, or restored from the latest checkpoint; on the mesh
    update: Callable[[Population], tuple[Population, Metrics]]  # the learner's, jitted over the mesh
    resumed: bool
    mesh: Mesh


def stored_members(run_dir: str) -> list[Member] | None:
    """The members of the sweep in `run_dir` (its sweep.json), or None when it holds none.

    Args:
      run_dir: the run directory.

    Returns:
      The members as the sweep was started with them, or None.
    """
    file = runs.path(run_dir, SWEEP)
    if not os.path.exists(file):
        return None
    with open(file) as f:
        return json.load(f)["members"]


def prepare_sweep(config: MetaConfig, members: Sequence[Member], run_dir: str, *, resume: bool = False,
                  member_devices: int = 1) -> PreparedSweep:
    """Check `run_dir` for the sweep and restore its latest checkpoint when `resume`; reads only.

    Args:
      config: the settings the members share.
      members: as `population.grid_members` or `random_members` give them.
      run_dir: the run directory.
      resume: continue from its latest checkpoint.
      member_devices: devices along the mesh's `member` axis (the rest split each member's tasks).

    Returns:
      The `PreparedSweep`.

    Raises:
      InputError: a member the config refuses, another config or other members in the run dir,
        no checkpoint to resume, or members / tasks that do not divide by the mesh.
    """
    mesh = distributed.make_mesh(config.devices, members=member_devices)
    config = config.replace(devices=mesh.size // jax.process_count())
    family = make_family(config.family)
    learner = population.make_population(config, family, list(members))
    distributed.check_learner(config, learner, mesh)
    start = runs.check_run_dir(run_dir, config, resume=resume)
    stored = stored_members(run_dir)
    if stored is not None and stored != [dict(m) for m in members]:
        raise InputError(f"run dir {run_dir} holds a sweep of other members ({len(stored)}: {stored[0]}, ...); "
                         "resume it with its own --seeds/--grid/--random or give another --run-dir")
    value = learner.init()
    if start is not None:
        restored = checkpoints.restore(runs.path(run_dir, runs.CHECKPOINTS), start, value.states, value.run_keys)
        value = value._replace(states=restored.state, run_keys=restored.run_key)
    update, value = distributed.shard_population(learner.update, value, mesh, config.num_tasks, learner.pooled)
    return PreparedSweep(config, run_dir, family, learner, value, update, resumed=start is not None, mesh=mesh)


def _keep_finite(new: Population, old: Population, finite: np.ndarray) -> Population:
    """`new`, but each non-finite member keeps its `old` state with its step counted."""
    def pick(n, o):
        return jnp.where(jnp.asarray(finite).reshape(-1, *([1] * (n.ndim - 1))), n, o)

    states = jax.tree.map(pick, new.states, old.states)
    return new._replace(states=states._replace(step=old.states.step + 1))


def _write_sweep(run_dir: str, members: Sequence[Member], results: list[dict] | None = None) -> None:
    payload = {"members": list(members), **({"results": results} if results is not None else {})}
    runs.write_atomic(runs.path(run_dir, SWEEP), json.dumps(payload, indent=1) + "\n")


def train_sweep(sweep: PreparedSweep, options: runs.RunOptions = runs.RunOptions(), *,
                on_step: Callable[[int, Metrics], None] | None = None) -> list[dict]:
    """Train every member to `config.meta_steps` in one program, then meta-test each and plot.

    Args:
      sweep: from `prepare_sweep`.
      options: checkpointing and logging, as `metaq train`'s; `skip_nonfinite` skips a member's
        non-finite update (its state kept, its step counted), the others going on.
      on_step: called after every meta-step with the step and the members' metrics `[P]`.

    Returns:
      Per member `{"member", "final": its last metrics, "trial_total", "trial": per-episode
      means, "inner_steps": after 0..K steps (gradient kind)}` — also written to sweep.json.

    Raises:
      NonFiniteError: a member's non-finite meta-loss or meta-gradient, unless `options.skip_nonfinite`.
    """
    config, run_dir, learner = sweep.config, sweep.run_dir, sweep.learner
    members, value, update = learner.members, sweep.population, sweep.update
    writer = distributed.is_writer()
    start = int(jax.device_get(value.states.step)[0])
    if writer:
        os.makedirs(run_dir, exist_ok=True)
        runs.write_config(run_dir, config, distributed.mesh_shape(sweep.mesh))
        _write_sweep(run_dir, members)
        for i in range(len(members)):
            os.makedirs(os.path.join(run_dir, MEMBERS, str(i)), exist_ok=True)
    logs = [runs.MetricsLog(os.path.join(run_dir, MEMBERS, str(i)), start) for i in range(len(members))] if writer else []
    mgr = (checkpoints.manager(runs.path(run_dir, runs.CHECKPOINTS), keep_last=options.keep_last)
           if writer else checkpoints.NoCheckpoints())
    env_steps, metrics = learner.env_steps_per_update, None
    try:
        if not sweep.resumed:
            checkpoints.save(mgr, value.states, value.run_keys)
        for step in range(start, config.meta_steps):
            new, metrics = update(value)
            metrics = jax.device_get(metrics)
            finite = np.isfinite(metrics.meta_loss) & np.isfinite(metrics.grad_norm)
            if step % options.log_every == 0 or not finite.all():
                for i, log in enumerate(logs):
                    log.write(step, {"env_steps": env_steps * (step + 1),
                                     **{k: float(v[i]) for k, v in metrics._asdict().items()}})
            if not finite.all() and not options.skip_nonfinite:
                bad = int(np.flatnonzero(~finite)[0])
                raise NonFiniteError(
                    f"meta-step {step}: member {bad} ({members[bad]}) has a non-finite meta-loss or meta-gradient; "
                    f"stopped, last good checkpoint: {last_good(mgr, run_dir)} "
                    "(narrow the swept values, or pass --skip-nonfinite)")
            value = new if finite.all() else _keep_finite(new, value, finite)
            if (step + 1) % options.checkpoint_every == 0:
                checkpoints.save(mgr, value.states, value.run_keys)
            if on_step is not None:
                on_step(step, metrics)
        if mgr.latest_step() != config.meta_steps:
            checkpoints.save(mgr, value.states, value.run_keys)
    finally:
        mgr.wait_until_finished()
        mgr.close()
        for log in logs:
            log.close()
    results = member_results(config, sweep.family, members, value, metrics)
    if writer:
        _write_sweep(run_dir, members, results)
        save_sweep_plot(results, config, runs.path(run_dir, SWEEP_PLOT))
    return results


def member_results(config: MetaConfig, family: TaskFamily, members: Sequence[Member], value: Population,
                   last: Metrics | None) -> list[dict]:
    """Each member's last metrics and its meta-test on the held-out tasks, as `metaq train` tests its run.

    The members are tested together (`population.member_returns`): one compile for all of them.

    Args:
      config: the shared settings.
      family: the tasks.
      members: the population's members.
      value: the trained population.
      last: the members' metrics of the last meta-step run, `[P]`, or None.

    Returns:
      Per member `{"member", "final", "trial", "trial_total", "inner_steps"}`: the means over the test tasks.
    """
    returns = population.member_returns(config, family, value, [m.get("seed", config.seed) for m in members],
                                        **test_sizes(config))
    results = []
    for i, member in enumerate(members):
        means = {p: rows[LEARNED][i].mean(axis=0) for p, rows in returns.items()}
        results.append({"member": dict(member),
                        "final": None if last is None else {k: float(v[i]) for k, v in last._asdict().items()},
                        "trial": stats.rounded(means["trial"]), "trial_total": stats.rounded(means["trial"].sum())[0],
                        "inner_steps": stats.rounded(means["inner_steps"]) if "inner_steps" in means else None})
    return results


def sweep_figure(results: list[dict], config: MetaConfig) -> Figure:
    """The held-out trial total of every member against each swept field, one panel per field; for a
    gradient learner a second row gives the return after its last inner step on MAML's protocol.

    Args:
      results: `member_results`' list.
      config: the shared settings (for the title).

    Returns:
      The figure: `[rows, fields]` axes, one line per training seed in each.
    """
    fields = [f for f in results[0]["member"] if f != "seed"] or ["seed"]
    rows = [("held-out trial return (total)", lambda r: r["trial_total"])]
    if results[0]["inner_steps"]:
        steps = len(results[0]["inner_steps"]) - 1
        rows.append((f"held-out return after {steps} inner steps", lambda r: r["inner_steps"][-1]))
    fig = Figure(figsize=(4.5 * len(fields), 3.5 * len(rows)), layout="tight")
    for axes, (label, value) in zip(fig.subplots(len(rows), len(fields), squeeze=False), rows):
        for ax, field in zip(axes, fields):
            for seed in sorted({r["member"]["seed"] for r in results}):
                mine = sorted((r["member"][field], value(r)) for r in results if r["member"]["seed"] == seed)
                ax.plot(*zip(*mine), marker="o", label=f"seed {seed}")
            ax.set(xlabel=field, ylabel=label, title=f"{config.family}: {config.algo}")
            ax.legend(fontsize="small")
    return fig


def save_sweep_plot(results: list[dict], config: MetaConfig, file: str) -> None:
    """`sweep_figure` written to `file`.

    Args:
      results: `member_results`' list.
      config: the shared settings (for the title).
      file: the image to write.

    Returns:
      Nothing; writes the image to `file`.
    """
    sweep_figure(results, config).savefig(file, dpi=100)
