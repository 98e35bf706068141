"""A meta-training run over a run directory: resumable exactly, logged, checkpointed, evaluated.

Resume is exact because the checkpoint holds the whole `MetaState` and the run key, and the key
of meta-step s is `fold_in(run_key, s)`: a resumed run computes the same steps bit for bit.
"""

import math
import os
import time
from typing import Callable, NamedTuple

import jax
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from metaq_jax import checkpoints, distributed, runs
from metaq_jax.algos import make_meta_learner
from metaq_jax.algos.base import MetaLearner
from metaq_jax.checkpoints import NonFiniteError
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.evaluate import add_rows, learner_returns, meta_test, with_support
from metaq_jax.protocol import add_fixed_baselines, fixed_baselines, pretrain_config, test_sizes
from metaq_jax.plots import save_adaptation_plot, save_interval_plot
from metaq_jax.tasks import make_family
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.training import initial_state, step_key, train
from metaq_jax.types import MetaState, Metrics


StepCallback = Callable[[int, Metrics], None]
"""`on_step(step, metrics)` after meta-step `step` (0-based), metrics on the host."""


class RunResult(NamedTuple):
    """What `train_run` returns."""

    state: MetaState
    last: Metrics | None  # metrics of the last meta-step run by this call; None if none was left
    report: dict  # `evaluation_report` of the final parameters


def evaluation_report(config: MetaConfig, learner: MetaLearner, family: TaskFamily, state: MetaState,
                      pretrained: MetaState | None = None) -> dict:
    """`meta_test` of `state` on the family's held-out tasks, labelled with family and algo.

    Beside the random initialisation it carries the baselines that need no training: the
    family's oracle and, on Bernoulli bandits, UCB1, Thompson sampling and random play; and,
    when given, the pretraining baseline, tested with the same tasks and keys.

    Args:
      config: the run's config (its seed + 1 keys the evaluation).
      learner: the run's meta-learner.
      family: the run's task family.
      state: the learner's state to test.
      pretrained: the state of `pretrain_config(config, family)` trained, or None.

    Returns:
      The `meta_test` report with `family` and `algo`: a trial of `trial_episodes` episodes, and
      for a gradient learner 0..max(3, K) inner steps, for a latent one a support batch.
    """
    tasks, key = family.test_tasks(), jax.random.key(config.seed + 1)
    sizes = test_sizes(config)
    report = {"family": config.family, "algo": config.algo, **meta_test(learner, state, tasks, key, **sizes)}
    if pretrained is not None:
        baseline_config = pretrain_config(config, family)
        returns = learner_returns(make_meta_learner(baseline_config, family), pretrained, tasks, key, **sizes)
        for protocol, rows in with_support(returns, baseline_config.inner_steps).items():
            add_rows(report, protocol, {"pretrain": rows})
    return add_fixed_baselines(report, fixed_baselines(family, tasks, key, num_seeds=1,
                                                       num_episodes=sizes["num_episodes"]))


def _is_finite(metrics: Metrics) -> bool:
    return math.isfinite(float(metrics.meta_loss)) and math.isfinite(float(metrics.grad_norm))


def last_good(mgr: ocp.CheckpointManager, run_dir: str) -> str:
    """The path of the run's newest finished checkpoint, or "none" (for a message that stops a run).

    Args:
      mgr: the run's checkpoint manager; waits for its writes in flight.
      run_dir: the run directory.

    Returns:
      `<run_dir>/checkpoints/<step>`, or `"none"`.
    """
    mgr.wait_until_finished()
    step = mgr.latest_step()
    return "none" if step is None else f"{runs.path(run_dir, runs.CHECKPOINTS)}/{step}"


class _NoLog:
    """The log of a process that writes none (every process but 0 of a multi-host run)."""

    def write(self, step: int, scalars: dict[str, float], *, volatile: dict[str, float] | None = None) -> None:
        """Log nothing.

        Args:
          step: ignored.
          scalars: ignored.
          volatile: ignored.

        Returns:
          None.
        """
        del step, scalars, volatile

    def close(self) -> None:
        """Nothing to close.

        Returns:
          None.
        """
        pass


class _Throughput:
    """Environment steps per second between successive logged meta-steps."""

    def __init__(self, env_steps_per_update: int, start: int):
        self.env_steps = env_steps_per_update
        self.last = (start, time.perf_counter())

    def __call__(self, step: int) -> float:
        (last_step, last_time), self.last = self.last, (step + 1, time.perf_counter())
        return self.env_steps * (step + 1 - last_step) / max(self.last[1] - last_time, 1e-9)


def _meta_steps(run: "PreparedRun", options: runs.RunOptions, mgr: ocp.CheckpointManager,
                log: runs.MetricsLog | _NoLog, on_step: StepCallback | None) -> tuple[MetaState, Metrics | None]:
    """Meta-steps from `run.state.step` to `meta_steps`, logging and checkpointing as told."""
    state, run_key, metrics = run.state, run.run_key, None
    env_steps = run.learner.env_steps_per_update
    throughput = _Throughput(env_steps, int(state.step))
    # no donation: a skipped update needs the state before it
    update = distributed.shard_update(run.learner.update, run.mesh, run.config.num_tasks, run.sharding)
    for step in range(int(state.step), run.config.meta_steps):
        new_state, metrics = update(state, step_key(run_key, step))
        metrics = jax.device_get(metrics)
        finite = _is_finite(metrics)
        if step % options.log_every == 0 or not finite:
            log.write(step, {"env_steps": env_steps * (step + 1), **{k: float(v) for k, v in metrics._asdict().items()}},
                      volatile={"throughput/env_steps_per_s": throughput(step)})
        if not finite and not options.skip_nonfinite:
            raise NonFiniteError(
                f"meta-step {step}: non-finite meta-loss {float(metrics.meta_loss)} or meta-gradient "
                f"norm {float(metrics.grad_norm)}; stopped, last good checkpoint: {last_good(mgr, run.run_dir)} "
                "(lower --inner-lr or --outer-lr, or pass --skip-nonfinite)")
        # a skipped update keeps the previous state but counts the step, so keys move on
        state = new_state if finite else state._replace(step=state.step + 1)
        if int(state.step) % options.checkpoint_every == 0:
            checkpoints.save(mgr, state, run_key)
        if on_step is not None:
            on_step(step, metrics)
    return state, metrics


class PreparedRun(NamedTuple):
    """A checked run, not yet started: nothing has been written to `run_dir`."""

    config: MetaConfig
    run_dir: str
    family: TaskFamily
    learner: MetaLearner
    state: MetaState  # the initial state, or the one restored from the latest checkpoint
    run_key: jax.Array
    resumed: bool
    mesh: Mesh  # devices along the task axis; the run key is replicated on it, the state laid out as `sharding`
    sharding: MetaState  # the state's layout on `mesh` (`distributed.state_sharding`)


def prepare_run(config: MetaConfig, run_dir: str, *, resume: bool = False) -> PreparedRun:
    """Check `run_dir` for `config` and restore its latest checkpoint when `resume`.

    Reads only: a refused run changes nothing.

    Args:
      config: the run's config; `devices` is resolved to the number each process puts on the mesh.
      run_dir: the run directory.
      resume: continue from the directory's latest checkpoint.

    Returns:
      The `PreparedRun`, its state and run key on the mesh (`distributed.state_sharding`).

    Raises:
      InputError: another config in the run dir, no checkpoint to resume, a corrupt checkpoint,
        an unwritable folder, or a task batch (or a pooled learner's pool) that does not divide
        by the devices.
    """
    mesh = distributed.make_mesh(config.devices)
    config = config.replace(devices=mesh.size // jax.process_count())
    family = make_family(config.family)
    learner = make_meta_learner(config, family)
    distributed.check_learner(config, learner, mesh)
    start = runs.check_run_dir(run_dir, config, resume=resume)
    state, run_key = initial_state(learner, config.seed)
    if start is not None:  # a checkpoint of any number of processes: it holds host arrays
        _, state, run_key = checkpoints.restore(runs.path(run_dir, runs.CHECKPOINTS), start, state, run_key)
    sharding = distributed.state_sharding(state, mesh, learner.pooled)
    state = distributed.place(state, sharding)
    run_key = distributed.replicate(run_key, mesh)
    return PreparedRun(config, run_dir, family, learner, state, run_key, resumed=start is not None, mesh=mesh,
                       sharding=sharding)


def train_run(run: PreparedRun, options: runs.RunOptions = runs.RunOptions(), *,
              on_step: StepCallback | None = None, pretrain: bool = False) -> RunResult:
    """Meta-train a prepared run to `config.meta_steps`, then meta-test it and plot the curve.

    Every process of a multi-host run calls this; only process 0 writes.

    Args:
      run: from `prepare_run`.
      options: checkpointing and logging settings.
      on_step: called after every meta-step with the step and its host metrics.
      pretrain: also train the pretraining baseline (`protocol.pretrain_config`: the same budget
        and seed, multi-task Q-learning) and put it beside in the report and the plot; it is not
        checkpointed (a resumed run trains it again, to the same parameters).

    Returns:
      `RunResult(state, last, report)`.

    Raises:
      NonFiniteError: a non-finite meta-loss or meta-gradient, unless `options.skip_nonfinite`.
    """
    config, run_dir, state = run.config, run.run_dir, run.state
    writer = distributed.is_writer()
    if writer:
        os.makedirs(run_dir, exist_ok=True)
        runs.write_config(run_dir, config, distributed.mesh_shape(run.mesh))
    mgr = (checkpoints.manager(runs.path(run_dir, runs.CHECKPOINTS), keep_last=options.keep_last)
           if writer else checkpoints.NoCheckpoints())
    log = runs.MetricsLog(run_dir, int(state.step)) if writer else _NoLog()
    try:
        if not run.resumed:
            checkpoints.save(mgr, state, run.run_key)  # step 0: a run can be resumed from its start
        state, last = _meta_steps(run, options, mgr, log, on_step)
        if mgr.latest_step() != int(state.step):
            checkpoints.save(mgr, state, run.run_key)
    finally:
        mgr.wait_until_finished()
        mgr.close()
        log.close()
    pretrained = train(pretrain_config(config, run.family), run.family)[0] if pretrain else None
    report = evaluation_report(config, run.learner, run.family, state, pretrained)
    if writer:
        save_adaptation_plot(report, runs.path(run_dir, runs.PLOT))
        save_interval_plot(report, runs.path(run_dir, runs.INTERVALS))
    return RunResult(state=state, last=last, report=report)


def load_run(run_dir: str) -> tuple[MetaConfig, MetaLearner, TaskFamily, MetaState]:
    """The config, learner, family and latest checkpointed state of a run; reads only.

    Args:
      run_dir: a folder written by `train_run` (or `metaq train`).

    Returns:
      `(config, learner, family, state)`, the state as host arrays.

    Raises:
      InputError: the folder holds no run or no checkpoint, or the checkpoint is damaged.
    """
    config = runs.stored_config(run_dir)
    if config is None:
        raise InputError(f"run dir {run_dir} holds no run (no {runs.CONFIG}); give the --run-dir of a metaq train run")
    step = checkpoints.latest_step(runs.path(run_dir, runs.CHECKPOINTS))
    if step is None:
        raise InputError(f"run dir {run_dir} holds no checkpoint; train it first (metaq train --resume)")
    family = make_family(config.family)
    learner = make_meta_learner(config, family)
    template, key = initial_state(learner, config.seed)
    restored = checkpoints.restore(runs.path(run_dir, runs.CHECKPOINTS), step, template, key)
    return config, learner, family, restored.state


def evaluate_run(run_dir: str) -> dict:
    """The `evaluation_report` of a run's latest checkpoint.

    Args:
      run_dir: a folder written by `train_run` (or `metaq train`).

    Returns:
      The report (see `evaluation_report`).

    Raises:
      InputError: as `load_run`.
    """
    config, learner, family, state = load_run(run_dir)
    return evaluation_report(config, learner, family, state)
