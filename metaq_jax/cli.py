"""The `metaq` command: parse, validate, call the library, report. No training logic here.

Bad input of any kind (a tyro parse error included) is one line on stderr and exit status 2.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
import time
from typing import Annotated, Union

import tyro

from metaq_jax import hosts
from metaq_jax.checkpoints import NonFiniteError
from metaq_jax.config import MetaConfig
from metaq_jax.runs import RunOptions, default_run_dir, load_config_file, stored_config


@dataclasses.dataclass(frozen=True)
class Hosts:
    """How this process joins a multi-host run (`jax.distributed.initialize`); none: one process.

    A flag left out is read from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID.
    """

    coordinator_address: str | None = None  # host:port of process 0, the same for every process
    num_processes: int | None = None  # processes in the run
    process_id: int | None = None  # this process, 0 to num_processes - 1; 0 writes logs and checkpoints


@dataclasses.dataclass(frozen=True)
class Train:
    """Meta-train a Q-network on a task family into a run directory, or resume one."""

    config: Annotated[MetaConfig, tyro.conf.arg(name="")] = MetaConfig()
    options: Annotated[RunOptions, tyro.conf.arg(name="")] = RunOptions()
    hosts: Annotated[Hosts, tyro.conf.arg(name="")] = Hosts()
    # a saved config.json to start from; flags given on the command line override it
    config_file: Annotated[str | None, tyro.conf.arg(name="config")] = None
    run_dir: str | None = None  # default: a new timestamped folder under runs/
    resume: bool = False  # continue the interrupted run in --run-dir from its latest checkpoint


@dataclasses.dataclass(frozen=True)
class Eval:
    """Meta-test a run's parameters on the held-out tasks, beside a random initialisation."""

    run_dir: str  # a folder written by metaq train
    json: bool = False  # print one JSON object on stdout instead of a table


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Meta-train, and pretrain with the same budget, then meta-test beside every baseline."""

    config: Annotated[MetaConfig, tyro.conf.arg(name="")] = MetaConfig()
    num_seeds: int = 1  # independent trials per held-out task
    out: str = "results"  # folder for protocol.json, protocol.md (the table) and protocol.png


@dataclasses.dataclass(frozen=True)
class Bench:
    """Benchmark workload W beside the PyTorch reference, after a meta-gradient correctness gate."""

    json: bool = False  # print one JSON object on stdout instead of the tables
    quick: bool = False  # T=8, K=5 only, two env counts, 3 rounds: under 3 minutes on 2 cores
    out: str | None = None  # also write bench.json and bench.md into this folder
    scaling: bool = False  # add a meta-step over 1, 2, 4 simulated CPU devices (one process each)
    cpu_devices: int = 0  # on a CPU, JAX devices to split it into for the sharded rows; 0: one per core


@dataclasses.dataclass(frozen=True)
class Families:
    """List the registered task families, one line each."""


def _base_config(argv: list[str]) -> MetaConfig:
    """The defaults of `train`'s flags: the resumed run's config, then `--config FILE` over it."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--run-dir")
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    values = {}
    if known.resume and known.run_dir and (stored := stored_config(known.run_dir)) is not None:
        values = stored.to_dict()
    if known.config:
        values.update(load_config_file(known.config))
    return MetaConfig.from_dict(values)


def _tyro_message(text: str) -> str:
    """The first section of tyro's error box as one line, plus the argument's usage if given."""
    lines = [line.strip().strip("│╭╰╮╯").strip() for line in text.splitlines()[1:]]
    rules = [i for i, line in enumerate(lines) if not line or set(line) <= set("─")]
    head = " ".join(lines[:rules[0] if rules else len(lines)])
    if "Argument helptext:" in lines:
        head += f" (allowed: {lines[lines.index('Argument helptext:') + 1]})"
    else:
        head += " (see metaq --help for the commands and flags)"
    return head


def _parse(argv: list[str] | None) -> Train | Eval | Protocol | Bench | Families:
    argv = sys.argv[1:] if argv is None else list(argv)
    train_default = Train(config=_base_config(argv)) if argv[:1] == ["train"] else Train()
    commands = Union[
        Annotated[Train, tyro.conf.subcommand("train", default=train_default)],
        Annotated[Eval, tyro.conf.subcommand("eval")],
        Annotated[Protocol, tyro.conf.subcommand("protocol")],
        Annotated[Bench, tyro.conf.subcommand("bench")],
        Annotated[Families, tyro.conf.subcommand("families")],
    ]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return tyro.cli(commands, prog="metaq", args=argv)
    except SystemExit as exit_:
        if exit_.code == 2:  # tyro's boxed parse error becomes our one line
            raise ValueError(_tyro_message(stderr.getvalue())) from None
        sys.stderr.write(stderr.getvalue())
        raise


def _join_hosts(flags: Hosts, argv: list[str] | None) -> None:
    """Make this process part of the multi-host run the flags describe.

    `metaq_jax` joined the run its environment describes when imported (JAX cannot join later),
    so flags that add to the environment restart the command with them as environment variables.
    """
    given = {k: v for k, v in dataclasses.asdict(flags).items() if v is not None}
    environ = {**os.environ, **hosts.as_environ(given)}
    if hosts.settings_from(environ) == hosts.settings_from(os.environ):
        return
    if argv is not None:
        raise ValueError("--coordinator-address, --num-processes, --process-id: only on the command line; "
                         f"in a Python process set {', '.join(hosts.ENV_VARS.values())} before importing metaq_jax")
    _restart(environ)


def _restart(environ: dict[str, str]) -> None:
    """Run this command line again in a fresh process with `environ` (JAX reads it at start)."""
    os.execve(sys.executable, [sys.executable, "-m", "metaq_jax", *sys.argv[1:]], environ)


def _split_cpu(devices: int, argv: list[str] | None) -> None:
    """Restart the command with the CPU split into `devices` JAX devices (0: one per core).

    XLA runs one device's work on one core at a time; the task axis sharded over one device per
    core is how a meta-step uses the whole CPU. The flag is read when JAX starts, hence the
    restart; nothing happens when JAX has other devices or the split is already in place.
    """
    import jax

    devices = devices or os.cpu_count() or 1
    flag = "--xla_force_host_platform_device_count"
    if argv is not None or jax.default_backend() != "cpu" or jax.device_count() == devices or \
            flag in os.environ.get("XLA_FLAGS", ""):
        return
    _restart({**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flag}={devices}".strip()})


def train(args: Train) -> None:
    """Check everything, then train with a progress bar and print a one-line summary."""
    import jax
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from metaq_jax import distributed, session
    from metaq_jax.train import env_steps_per_update

    run_dir = args.run_dir or default_run_dir()
    run = session.prepare_run(args.config, run_dir, resume=args.resume)
    config, first = run.config, int(run.state.step)
    print(f"metaq train: {config.algo} on {config.family}, {config.num_tasks} tasks × {config.num_envs} envs × "
          f"{config.rollout_length} steps, K={config.inner_steps}, {jax.devices()[0].platform} mesh "
          f"{distributed.mesh_shape(run.mesh)} ({config.devices} device(s) × {jax.process_count()} process(es)), "
          f"{'resuming at meta-step ' + str(first) if run.resumed else 'new run'} in {run_dir}")
    columns = [TextColumn("meta-step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    start = time.perf_counter()
    with Progress(*columns) as progress:
        bar = progress.add_task("train", total=config.meta_steps, completed=first, info="compiling…")

        def on_step(step, m):
            rate = env_steps_per_update(config) * (step + 1 - first) / (time.perf_counter() - start)
            progress.update(bar, completed=step + 1, info=(
                f"loss {float(m.meta_loss):.3f}  return {float(m.pre_return):.1f} → "
                f"{float(m.post_return):.1f}  {rate:,.0f} env steps/s"))

        result = session.train_run(run, args.options, on_step=on_step)
    report = result.report
    print(f"done: {config.meta_steps - first} meta-steps in {time.perf_counter() - start:.0f} s; "
          f"test return after {report['inner_steps'][-1]} inner steps {report['returns'][-1]:.1f} "
          f"(random init {report['baselines']['random_init'][-1]:.1f}, 0 steps {report['returns'][0]:.1f}); "
          f"run dir {os.path.abspath(run_dir)}")


def evaluate(args: Eval) -> None:
    """Print the meta-test of a run, as a table or as one JSON object."""
    from metaq_jax import session
    from metaq_jax.protocol import markdown_table

    report = session.evaluate_run(args.run_dir)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['family']} / {report['algo']}: mean return on held-out tasks (± 95% CI)")
    print(markdown_table(report))


def protocol(args: Protocol) -> None:
    """Run the meta-test protocol and write its report, table and plot to `args.out`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from metaq_jax.plots import save_adaptation_plot
    from metaq_jax.protocol import markdown_table, run_protocol

    if not isinstance(args.num_seeds, int) or args.num_seeds < 1:
        raise ValueError(f"--num-seeds = {args.num_seeds!r}: must be a positive integer")
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn()) as progress:
        bars = {name: progress.add_task(name, total=args.config.meta_steps) for name in ("meta", "pretrain")}
        report = run_protocol(args.config, num_seeds=args.num_seeds,
                              callback=lambda name, step, m: progress.update(bars[name], completed=step + 1))
    report["config"] = args.config.to_dict()
    table = markdown_table(report)
    with open(os.path.join(args.out, "protocol.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "protocol.md"), "w") as f:
        f.write(table + "\n")
    save_adaptation_plot(report, os.path.join(args.out, "protocol.png"))
    print(table)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {os.path.abspath(args.out)}/protocol.{{json,md,png}}")


def bench(args: Bench) -> None:
    """Run the benchmark suite; print its tables (progress on stderr) or one JSON object."""
    import importlib.util

    from metaq_jax.bench import report, suite

    with_torch = importlib.util.find_spec("torch") is not None
    if not with_torch:
        print("metaq bench: torch is not installed (pip install 'metaq-jax[bench]'): no gate, no torch timings",
              file=sys.stderr)
    plan = suite.Plan.quick() if args.quick else suite.Plan.full()
    start = time.perf_counter()
    result = suite.run_suite(plan, with_torch=with_torch,
                             log=lambda m: print(f"[{time.perf_counter() - start:4.0f} s] {m}", file=sys.stderr))
    table = report.markdown(result)
    if args.scaling:
        from metaq_jax.bench import scaling

        result["scaling"] = scaling.scaling()
        table += "\n\n## Scaling over simulated CPU devices (maml, cartpole, 16 tasks × 16 envs × 50 steps, K=2)\n\n"
        table += scaling.markdown(result["scaling"])
    result["wall_s"] = time.perf_counter() - start
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "bench.md"), "w") as f:
            f.write(table + "\n")
    print(json.dumps(result) if args.json else table)


def families() -> None:
    """List the registered task families, one line each."""
    import metaq_jax as mq

    for name in mq.list_families():
        print(f"{name:12s} {mq.make_family(name).description}")


def main(argv: list[str] | None = None) -> None:
    try:
        command = _parse(argv)
        if isinstance(command, Train):
            _join_hosts(command.hosts, argv)
            train(command)
        elif isinstance(command, Eval):
            evaluate(command)
        elif isinstance(command, Protocol):
            protocol(command)
        elif isinstance(command, Bench):
            _split_cpu(command.cpu_devices, argv)
            bench(command)
        else:
            families()
    except ValueError as error:  # a user's bad input: one line, no traceback
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as error:
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(1)
