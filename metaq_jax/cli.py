"""The `metaq` command: parse, validate, call the library, report. No training logic here.

A user's mistake (a flag tyro cannot parse, a config value, a file, a run directory) is one
line on stderr and exit status 2; anything else is a bug: its traceback, a line asking to
report it, and exit status 1.
"""

import dataclasses
import importlib
import json
import os
import shutil
import sys
import time
import traceback
from typing import Annotated, TypedDict, Union

import tyro
from tyro import _docstrings, _errors  # tyro is pinned exactly: these are its parse-error hook and field help

from metaq_jax import runs
from metaq_jax.checkpoints import NonFiniteError
from metaq_jax.config import TUNED, MetaConfig, tuned_values
from metaq_jax.errors import InputError


def _tuned_hint(name: str) -> str:
    """The help's note of a field's tuned values, e.g. `"; 1800 for nav2d maml"`."""
    return "".join(f"; {settings[name]} for {family} {algo}" for (family, algo), settings in TUNED.items()
                   if name in settings)


ConfigFlags = TypedDict("ConfigFlags", {  # only the flags given are keys: they override --config
    field.name: Annotated[field.type, tyro.conf.arg(
        help=_docstrings.get_field_docstring(MetaConfig, field.name, ()),
        help_behavior_hint=f"(default: {field.default}{_tuned_hint(field.name)})")]
    for field in dataclasses.fields(MetaConfig)}, total=False)


@dataclasses.dataclass(frozen=True)
class Hosts:
    """How this process joins a multi-process run (`metaq_jax.distributed.initialize`).

    A flag left out is read from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
    under SLURM or Open MPI, JAX detects what is still missing.
    """

    coordinator_address: str | None = None  # host:port of process 0, the same for every process
    num_processes: int | None = None  # processes in the run
    process_id: int | None = None  # this process, 0 to num_processes - 1; 0 writes logs and checkpoints


@dataclasses.dataclass(frozen=True)
class Train:
    """Meta-train a Q-network on a task family into a run directory, or resume one."""

    config: Annotated[ConfigFlags, tyro.conf.arg(name="")]
    options: Annotated[runs.RunOptions, tyro.conf.arg(name="")] = runs.RunOptions()
    hosts: Annotated[Hosts, tyro.conf.arg(name="")] = Hosts()
    # a saved config.json to start from; flags given on the command line override it
    config_file: Annotated[str | None, tyro.conf.arg(name="config")] = None
    run_dir: str | None = None  # default: a new timestamped folder under runs/
    resume: bool = False  # continue the run in --run-dir from its latest checkpoint, with its config
    # start from the settings tuned for the family and algo where there are some (the default job's); --no-tuned: MetaConfig's defaults
    tuned: bool = True
    # also train the pretraining baseline (same budget and seed) and show it beside, in the summary and adaptation.png
    pretrain: bool = True


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Train a population (seeds × hyperparameters) as one compiled program into a run directory."""

    config: Annotated[ConfigFlags, tyro.conf.arg(name="")]
    options: Annotated[runs.RunOptions, tyro.conf.arg(name="")] = runs.RunOptions()
    hosts: Annotated[Hosts, tyro.conf.arg(name="")] = Hosts()
    # a saved config.json to start from; flags given on the command line override it
    config_file: Annotated[str | None, tyro.conf.arg(name="config")] = None
    seeds: int = 1  # S: training seeds seed .. seed + S - 1, each with every setting
    # field=v1,v2,... (repeatable): every combination of the values, e.g. --grid inner_lr=0.05,0.1
    grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(help_behavior_hint="(default: none)")] = ()
    random: int = 0  # N settings drawn at random from the --range flags (instead of --grid)
    # field=low:high, or field=low:high:log for log-uniform (repeatable), for --random
    range: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(help_behavior_hint="(default: none)")] = ()
    member_devices: int = 1  # devices along the population's member axis; the rest split each member's tasks
    run_dir: str | None = None  # default: a new timestamped folder under runs/
    resume: bool = False  # continue the sweep in --run-dir from its latest checkpoint, with its config and members
    # start from the settings tuned for the family and algo where there are some (the default job's); --no-tuned: MetaConfig's defaults
    tuned: bool = True


@dataclasses.dataclass(frozen=True)
class Eval:
    """Meta-test a run's parameters on the held-out tasks, beside a random initialisation."""

    run_dir: str  # a folder written by metaq train
    json: bool = False  # print one JSON object on stdout instead of a table


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Meta-train, and pretrain with the same budget, then meta-test beside every baseline."""

    config: Annotated[ConfigFlags, tyro.conf.arg(name="")]
    # a saved config.json to start from; flags given on the command line override it
    config_file: Annotated[str | None, tyro.conf.arg(name="config")] = None
    num_seeds: int = 1  # independent trials per held-out task
    train_seeds: int = 1  # training runs (seeds seed, seed+1, ...), their trials pooled in every row
    out: str = "results"  # folder for protocol.json, protocol.md (the table) and protocol.png
    # continue the training a killed protocol left in OUT/training (its checkpoints), with the same flags
    resume: bool = False
    # start from the settings tuned for the family and algo where there are some (the default job's); --no-tuned: MetaConfig's defaults
    tuned: bool = True


@dataclasses.dataclass(frozen=True)
class Bench:
    """Benchmark workload W beside the PyTorch reference, after a meta-gradient correctness gate."""

    json: bool = False  # print one JSON object on stdout instead of the tables
    quick: bool = False  # T=8, K=5 only, two env counts, 3 rounds: under 3 minutes on 2 cores
    out: str | None = None  # also write bench.json and bench.md into this folder
    scaling: bool = False  # add a meta-step over 1, 2, 4 simulated CPU devices (one process each)
    cpu_devices: int = 0  # on a CPU, JAX devices to split it into for the sharded rows; 0: one per core
    population: bool = False  # add populations of 1, 4, 16, 64 members against as many separate runs
    locomotion: bool = False  # add brax locomotion: env steps/s per family, meta-steps/s per learner


@dataclasses.dataclass(frozen=True)
class Families:
    """List the task families, built-in, installed (entry points) and imported, one line each."""


Command = Union[
    Annotated[Train, tyro.conf.subcommand("train")],
    Annotated[Sweep, tyro.conf.subcommand("sweep")],
    Annotated[Eval, tyro.conf.subcommand("eval")],
    Annotated[Protocol, tyro.conf.subcommand("protocol")],
    Annotated[Bench, tyro.conf.subcommand("bench")],
    Annotated[Families, tyro.conf.subcommand("families")],
]


@dataclasses.dataclass(frozen=True)
class Metaq:
    """Meta-reinforcement learning built on Q-learning, in JAX."""

    command: Annotated[Command, tyro.conf.arg(name="")]
    # modules to import first, e.g. one that calls metaq_jax.register_family (repeatable)
    imports: Annotated[tuple[str, ...], tyro.conf.arg(name="import", help_behavior_hint="(default: none)"),
                       tyro.conf.UseAppendAction] = ()


def _parse_error(event: "_errors.ParseErrorEvent") -> None:
    """tyro's parse-error hook: the failure as one `InputError` line instead of tyro's box."""
    if isinstance(event, _errors.UnrecognizedArgs):
        message = f"Unrecognized options: {' '.join(event.tokens)}"
    elif isinstance(event, _errors.InstantiationFailure) and event.argument is not None:
        message = f"{event.argument.display_name()}: {event.message} (allowed: {event.argument.lowered.metavar})"
    elif isinstance(event, _errors.InstantiationFailure):
        message = event.message
    elif isinstance(event, _errors.InvalidChoice):
        message = f"{event.argument.display_name()} = {event.value!r}: must be one of {', '.join(event.choices)}"
    elif isinstance(event, _errors.MissingSubcommand):
        names = ", ".join(event.subcommand_spec.parser_from_name)
        found = "none given" if event.found_token is None else f"{event.found_token!r} is not one"
        message = f"a command is required ({found}): one of {names}"
    elif isinstance(event, _errors.BadValue) and event.offending_value is None:
        message = f"{event.argument.display_name()}: a value is required (allowed: {event.argument.lowered.metavar})"
    elif isinstance(event, _errors.MissingArgs):
        message = f"missing {', '.join(a.arg.display_name() for a in event.missing_arguments)}"
    else:  # tyro may add kinds of parse error; each still gets one line
        message = f"the command line cannot be parsed ({type(event).__name__})"
    raise InputError(f"{message}; see {event.prog} --help")


def parse(argv: list[str]) -> Metaq:
    """The command `argv` asks for.

    Args:
      argv: the command line without the program name.

    Returns:
      The parsed `Metaq`: the command and the modules to import.

    Raises:
      InputError: tyro cannot parse it.
    """
    with _errors.on_parse_error(_parse_error):
        return tyro.cli(Metaq, prog="metaq", args=argv)


def import_modules(names: tuple[str, ...]) -> None:
    """Import each `--import` module, which may register families.

    Args:
      names: dotted module names.

    Returns:
      Nothing; the modules are imported.

    Raises:
      InputError: a module does not exist (an error inside one that exists propagates).
    """
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
                raise  # the module exists but fails inside: its own traceback tells why
            raise InputError(f"--import {name}: no module named {error.name!r}; give an importable "
                             "module (on PYTHONPATH or installed)") from None


def resolve_config(flags: dict, config_file: str | None, run_dir: str | None = None,
                   resume: bool = False, tuned: bool = True) -> MetaConfig:
    """The config a command runs: the resumed run's, then `config_file` over it, then `flags`, all
    over the settings tuned for the family and algo they name (`config.TUNED`).

    Args:
      flags: the config fields given on the command line.
      config_file: a saved config.json, or None.
      run_dir: the run directory (read only with `resume`).
      resume: start from the run directory's stored config.
      tuned: start from the tuned settings; False: from `MetaConfig`'s defaults alone.

    Returns:
      The validated config.

    Raises:
      InputError: an unreadable file, an unknown field or a value that is not allowed.
    """
    values = {}
    if resume and run_dir and (stored := runs.stored_config(run_dir)) is not None:
        values = stored.to_dict()
    if config_file:
        values.update(runs.load_config_file(config_file))
    values = {**values, **flags}
    settings = tuned_values(values) if tuned else values
    try:
        return MetaConfig.from_dict(settings)
    except InputError as error:  # name a tuned value the user did not give, or they cannot tell where it came from
        name = error.field
        if name not in settings or name in values:
            raise
        family, algo = settings.get("family", MetaConfig.family), settings.get("algo", MetaConfig.algo)
        raise InputError(f"{error}; {name} = {settings[name]!r} is a setting tuned for {family} {algo}: "
                         "give its flag, or --no-tuned to start from the defaults") from None


def _split_cpu(devices: int) -> None:
    """Split the CPU into `devices` JAX devices (0: one per core): a training's task axis, or
    `bench`'s sharded rows, sharded over them.

    XLA runs one device's work on one core at a time; the task axis sharded over one device per
    core is how a meta-step uses the whole CPU. The flag concerns the host platform only and is
    read when JAX's backend starts, which nothing has done yet when the command begins.
    """
    flag = "--xla_force_host_platform_device_count"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}={devices or os.cpu_count() or 1}".strip()


def _cache_compiles() -> None:
    """Keep XLA's compiled programs on disk (JAX's persistent compilation cache), so a second run of
    the same config compiles nothing, and a run's programs that are the same (its learner's and its
    pretraining baseline's meta-test) compile once.

    The folder is JAX_COMPILATION_CACHE_DIR when set (empty: no cache), else
    `$XDG_CACHE_HOME/metaq_jax/xla` (`~/.cache/metaq_jax/xla`).
    """
    import jax

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if folder is None:
        home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        jax.config.update("jax_compilation_cache_dir", os.path.join(home, "metaq_jax", "xla"))


def _task_devices(counts: tuple[int, ...], cores: int) -> int:
    """The most devices, at most `cores`, that every count in `counts` splits over evenly."""
    return max(d for d in range(1, min(cores, *counts) + 1) if all(n % d == 0 for n in counts))


def _cpu_devices(config: MetaConfig, members: int = 1) -> int:
    """How many devices a training of `config` splits the CPU into: `config.devices` when given,
    else one per core, as many as its tasks (a latent learner's pool too) split over evenly in
    each of `members` groups (the population's member axis)."""
    if config.devices:
        return config.devices
    counts = (config.num_tasks, config.task_pool) if config.kind == "latent" else (config.num_tasks,)
    return members * _task_devices(counts, max(1, (os.cpu_count() or 1) // members))


def _split_for(config: MetaConfig, hosts: Hosts | None = None, members: int = 1) -> None:
    """Split the CPU for a training of `config` (`_cpu_devices`), unless the run spans processes:
    then each process's devices are its own affair."""
    from metaq_jax import distributed

    given = {} if hosts is None else {k: v for k, v in dataclasses.asdict(hosts).items() if v is not None}
    if not (given or distributed.settings_from(os.environ) or distributed.detected_cluster(os.environ)):
        _split_cpu(_cpu_devices(config, members))


def train(args: Train, *, split_cpu: bool = False) -> None:
    """Check everything, then train with a progress bar and print a one-line summary.

    Args:
      args: the parsed `train` command.
      split_cpu: split the CPU into devices (`_cpu_devices`) when the run is one process; only
        before JAX's backend starts.

    Returns:
      Nothing; the run's checkpoints, metrics and report go to its run directory.
    """
    import jax
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from metaq_jax import distributed, session

    config = resolve_config(args.config, args.config_file, args.run_dir, args.resume, args.tuned)
    if split_cpu:
        _split_for(config, args.hosts)
    distributed.initialize(**dataclasses.asdict(args.hosts))  # before anything starts JAX's backend

    run_dir = args.run_dir or runs.default_run_dir()
    run = session.prepare_run(config, run_dir, resume=args.resume)
    config, first = run.config, int(run.state.step)
    print(f"metaq train: {config.algo} ({run.learner.kind}) on {config.family}, {config.num_tasks} tasks × "
          f"{config.num_envs} envs, {run.learner.env_steps_per_update:,} env steps per meta-step, "
          f"{jax.devices()[0].platform} mesh "
          f"{distributed.mesh_shape(run.mesh)} ({config.devices} device(s) × {jax.process_count()} process(es)), "
          f"{'resuming at meta-step ' + str(first) if run.resumed else 'new run'} in {run_dir}")
    columns = [TextColumn("meta-step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    start = time.perf_counter()
    with Progress(*columns) as progress:
        bar = progress.add_task("train", total=config.meta_steps, completed=first, info="compiling…")

        def on_step(step, m):
            rate = run.learner.env_steps_per_update * (step + 1 - first) / (time.perf_counter() - start)
            progress.update(bar, completed=step + 1, info=(
                f"loss {float(m.meta_loss):.3f}  return {float(m.pre_return):.1f} → "
                f"{float(m.post_return):.1f}  {rate:,.0f} env steps/s"))

        result = session.train_run(run, args.options, on_step=on_step, pretrain=args.pretrain)
    print(f"done: {config.meta_steps - first} meta-steps in {time.perf_counter() - start:.0f} s; "
          f"{summary_line(result.report)}; run dir {os.path.abspath(run_dir)}")


def summary_line(report: dict) -> str:
    """The held-out returns of a `metaq train` report in one line: after 0..K inner steps (gradient
    kind), else per episode of a trial, meta-learned beside pretraining and random init.

    Args:
      report: `session.evaluation_report`'s dict.

    Returns:
      e.g. `held-out return after 0/1/2/3 inner steps: -20.0 → ... (pretrain ...; random init ...)`.
    """
    from metaq_jax.evaluate import LEARNED

    protocol = "inner_steps" if "inner_steps" in report["protocols"] else "trial"
    part = report["protocols"][protocol]
    line = lambda name: " → ".join(f"{m:.1f}" for m in part["rows"][name]["mean"])  # noqa: E731
    what = ("after " + "/".join(str(p) for p in part["points"]) + " inner steps" if protocol == "inner_steps"
            else "per episode of a trial")
    others = "; ".join(f"{name.replace('_', ' ')} {line(name)}" for name in ("pretrain", "random_init", "oracle")
                       if name in part["rows"])
    return f"held-out return {what}: {line(LEARNED)} ({others})"


def sweep_members(args: Sweep, config: MetaConfig) -> list[dict]:
    """The members `args` asks for: seeds × a grid or random draws; on resume without them, the stored ones.

    Args:
      args: the parsed `sweep` command.
      config: the resolved shared config (its seed is the first seed, and seeds the draws).

    Returns:
      The members.

    Raises:
      InputError: both --grid and --random, a bad --seeds, or a malformed --grid / --range.
    """
    from metaq_jax import population, sweep

    if not isinstance(args.seeds, int) or args.seeds < 1:
        raise InputError(f"--seeds = {args.seeds!r}: must be a positive integer")
    if args.grid and (args.random or args.range):
        raise InputError("--grid with --random/--range: give a grid or random draws, not both")
    if args.range and not args.random:
        raise InputError("--range without --random N: say how many settings to draw")
    seeds = list(range(config.seed, config.seed + args.seeds))
    if args.resume and args.run_dir and not (args.grid or args.random):
        stored = sweep.stored_members(args.run_dir)
        if stored is not None:
            return stored
    if args.random:
        return sweep.random_members(seeds, args.range, args.random, config.seed)
    return population.grid_members(seeds, sweep.parse_grid(args.grid))


def run_sweep(args: Sweep, *, split_cpu: bool = False) -> None:
    """Check everything, then train the population with a progress bar and print each member's result.

    Args:
      args: the parsed `sweep` command.
      split_cpu: as `train`'s, with `--member-devices` groups of task devices.

    Returns:
      Nothing; the members' checkpoints, metrics and results go to the run directory.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from metaq_jax import distributed, sweep

    config = resolve_config(args.config, args.config_file, args.run_dir, args.resume, args.tuned)
    members = sweep_members(args, config)
    if split_cpu:  # a bad --member-devices is refused, by name, where the mesh is made
        groups = args.member_devices if isinstance(args.member_devices, int) and args.member_devices > 0 else 1
        _split_for(config, args.hosts, groups)
    distributed.initialize(**dataclasses.asdict(args.hosts))  # before anything starts JAX's backend
    run_dir = args.run_dir or runs.default_run_dir()
    prepared = sweep.prepare_sweep(config, members, run_dir, resume=args.resume, member_devices=args.member_devices)
    config, first = prepared.config, int(prepared.population.states.step[0])
    print(f"metaq sweep: {len(members)} members of {config.algo} on {config.family} in one program, "
          f"mesh {dict(prepared.mesh.shape)}, {'resuming at meta-step ' + str(first) if prepared.resumed else 'new run'} "
          f"in {run_dir}")
    start = time.perf_counter()
    columns = [TextColumn("meta-step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns) as progress:
        bar = progress.add_task("sweep", total=config.meta_steps, completed=first, info="compiling…")

        def on_step(step, m):
            progress.update(bar, completed=step + 1, info=f"loss {float(m.meta_loss.min()):.3f}–{float(m.meta_loss.max()):.3f}")

        results = sweep.train_sweep(prepared, args.options, on_step=on_step)
    for i, result in enumerate(results):
        print(f"member {i} {result['member']}: held-out trial return {result['trial_total']:.2f}")
    print(f"done: {config.meta_steps - first} meta-steps of {len(members)} members in "
          f"{time.perf_counter() - start:.0f} s; run dir {os.path.abspath(run_dir)}")


def evaluate(args: Eval) -> None:
    """Print the meta-test of a run, as a table or as one JSON object.

    Args:
      args: the parsed `eval` command.

    Returns:
      Nothing; prints to stdout.
    """
    from metaq_jax import session
    from metaq_jax.protocol import markdown_table

    report = session.evaluate_run(args.run_dir)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['family']} / {report['algo']}: mean return on held-out tasks (± 95% CI)")
    print(markdown_table(report))


def _first_missing(path: str) -> str | None:
    """The outermost folder of `path` that does not exist yet (None when `path` exists)."""
    missing = None
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing, path = path, os.path.dirname(path)
    return missing


def protocol(args: Protocol, *, split_cpu: bool = False) -> None:
    """Run the meta-test protocol and write its report, table and plot to `args.out`.

    Args:
      args: the parsed `protocol` command.
      split_cpu: as `train`'s: the trainings run on the devices, the meta-test on one.

    Returns:
      Nothing; writes `protocol.{json,md,png}`, `protocol_intervals.png` and `SCORES` to `args.out`.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from metaq_jax.plots import save_adaptation_plot, save_interval_plot
    from metaq_jax.protocol import SCORES, TRAINING, check_training, markdown_table, run_protocol, save_report
    config = resolve_config(args.config, args.config_file, tuned=args.tuned)
    for flag, value in (("--num-seeds", args.num_seeds), ("--train-seeds", args.train_seeds)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{flag} = {value!r}: must be a positive integer")
    if split_cpu:
        _split_for(config)
    training = os.path.join(args.out, TRAINING)
    check_training(training, config, list(range(config.seed, config.seed + args.train_seeds)), resume=args.resume)
    created = _first_missing(args.out)
    os.makedirs(args.out, exist_ok=True)  # now, so that an unwritable --out fails before the training
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn()) as progress:
        bars = {name: progress.add_task(f"{name} ({args.train_seeds} seeds at once)", total=config.meta_steps)
                for name in ("meta", "pretrain")}

        def advance(name, step, _):
            progress.update(bars[name], completed=step + 1)

        try:
            report = run_protocol(config, num_seeds=args.num_seeds, train_seeds=args.train_seeds, callback=advance,
                                  folder=training)
        except InputError:
            if created is not None:  # a refused config leaves nothing behind
                shutil.rmtree(created)
            raise
    report["config"] = config.to_dict()
    table = markdown_table(report)
    save_report(report, args.out)
    with open(os.path.join(args.out, "protocol.md"), "w") as f:
        f.write(table + "\n")
    save_adaptation_plot(report, os.path.join(args.out, "protocol.png"))
    save_interval_plot(report, os.path.join(args.out, "protocol_intervals.png"))
    shutil.rmtree(training)  # the report is written: its checkpoints have served
    print(table)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {os.path.abspath(args.out)}/protocol.{{json,md,png}}, "
          f"protocol_intervals.png and {SCORES}")


def bench(args: Bench) -> None:
    """Run the benchmark suite; print its tables (progress on stderr) or one JSON object.

    Args:
      args: the parsed `bench` command.

    Returns:
      Nothing; prints to stdout, and with `args.out` writes `bench.json` and `bench.md` there.
    """
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
    if args.population:
        from metaq_jax.bench import population

        result["population"] = population.population_rows()
        table += ("\n\n## Populations: P members in one program against P separate runs (maml, nav2d, "
                  "4 tasks × 4 envs × 20 steps, one device)\n\n" + population.markdown(result["population"]))
    if args.locomotion:
        from metaq_jax.bench import locomotion

        result["locomotion"] = locomotion.locomotion_rows()
        table += ("\n\n## Locomotion: env steps per second of a jitted vmapped rollout, random actions\n\n"
                  + locomotion.markdown(result["locomotion"]))
        result["locomotion_learners"] = locomotion.learner_rows()
        table += ("\n\n## Locomotion: each learner's meta-step on cheetah-vel (4 tasks × 2 envs, 200-step "
                  "episodes, 64-64 networks)\n\n" + locomotion.learners_markdown(result["locomotion_learners"]))
    result["wall_s"] = time.perf_counter() - start
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "bench.md"), "w") as f:
            f.write(table + "\n")
    print(json.dumps(result) if args.json else table)


def families() -> None:
    """List the task families, one line each.

    Returns:
      Nothing; prints to stdout.
    """
    from metaq_jax.tasks import list_families, make_family

    names = list_families()
    width = max(map(len, names))
    for name in names:
        try:
            description = make_family(name).description or "(no description)"
        except InputError as error:  # e.g. a locomotion family without brax installed
            description = f"(unavailable: {error})"
        print(f"{name:{width}s}  {description}")


def run(argv: list[str] | None = None) -> None:
    """Parse `argv` and run the command it names.

    `metaq bench` and `metaq train` from a real command line (no `argv`) split the CPU into JAX
    devices first (bench: one per core; train: see `train`); called with `argv`, JAX may already be
    running, so it is left as it is.

    Args:
      argv: the command line without the program name; None: the process's arguments.

    Returns:
      Nothing; the command's output goes to stdout and its files.

    Raises:
      InputError: bad input of any kind.
    """
    parsed = parse(sys.argv[1:] if argv is None else list(argv))
    import_modules(parsed.imports)
    command = parsed.command
    if argv is None and not isinstance(command, Bench):  # bench reports compile times: it compiles afresh
        _cache_compiles()
    if isinstance(command, Train):
        train(command, split_cpu=argv is None)
    elif isinstance(command, Sweep):
        run_sweep(command, split_cpu=argv is None)
    elif isinstance(command, Eval):
        evaluate(command)
    elif isinstance(command, Protocol):
        protocol(command, split_cpu=argv is None)
    elif isinstance(command, Bench):
        if argv is None:
            _split_cpu(command.cpu_devices)
        bench(command)
    else:
        families()


def main(argv: list[str] | None = None) -> None:
    """The `metaq` command: `run(argv)`, with exit status 2 for bad input and 1 for a failure.

    Args:
      argv: the command line without the program name; None: the process's arguments.

    Returns:
      Nothing; exits the process on an error.
    """
    try:
        run(argv)
    except InputError as error:  # the user's mistake: one line, no traceback
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as error:  # training diverged: what happened and where to resume
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # the reader of stdout went away (`metaq families | head`): not a bug
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet
        sys.exit(1)
    except Exception:  # noqa: BLE001  (anything else is ours to fix: show it all)
        traceback.print_exc()
        print("metaq: internal error: this is a bug in metaq_jax, not in your input; please report it "
              "with the traceback above and the command you ran", file=sys.stderr)
        sys.exit(1)
