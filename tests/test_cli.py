"""The `metaq` command: smoke runs, exact resume after SIGKILL, clean stops, bad input refused."""

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from helpers import device_env
from metaq_jax import checkpoints, cli, runs, session
from metaq_jax.config import TUNED, MetaConfig
from metaq_jax.protocol import PLAN, TRAINING

TINY = ["--family", "bandit", "--num-tasks", "2", "--num-envs", "2", "--rollout-length", "10",
        "--hidden-sizes", "8", "--inner-steps", "1"]
META_STEPS = 40
RUN = [*TINY, "--no-pretrain", "--meta-steps", str(META_STEPS), "--checkpoint-every", "3", "--keep-last", "2"]
KILLS = 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted `metaq train` of RUN, in this process: (run dir, stdout)."""
    run_dir = str(tmp_path_factory.mktemp("reference") / "run")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["train", *[a for a in RUN if a != "--no-pretrain"], "--run-dir", run_dir])  # beside pretraining
    return run_dir, out.getvalue()


def _digest(run_dir) -> str:
    return checkpoints.tree_digest(session.load_run(str(run_dir))[3].params)


def _metrics(run_dir) -> bytes:
    with open(os.path.join(run_dir, runs.METRICS), "rb") as f:
        return f.read()


def test_families_lists_one_line_each(capsys):
    cli.main(["families"])
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert {"bandit", "cartpole", "nav2d"} <= set(names) and names == sorted(names)
    assert all(len(line.split()) > 1 for line in lines)  # a description on each line
    width = max(map(len, names))  # descriptions in one column, after the longest name
    assert {len(line) - len(line[width:].lstrip()) for line in lines} == {width + 2}


@pytest.mark.parametrize("command", ["train", "sweep", "protocol"])
def test_a_command_starts_from_the_tuned_settings_unless_told_not_to(command):
    def config(*flags):
        args = cli.parse([command, *flags]).command
        return cli.resolve_config(args.config, args.config_file, tuned=args.tuned)

    job = config()  # no flags: the default job, nav2d maml with its tuned settings
    assert job == MetaConfig(**TUNED[("nav2d", "maml")])
    assert config("--meta-steps", "5") == job.replace(meta_steps=5)  # a flag overrides a tuned value
    assert config("--no-tuned") == MetaConfig()
    assert config("--algo", "fomaml") == MetaConfig(algo="fomaml")  # nothing tuned for it


@pytest.mark.parametrize("settings, members, expected", [
    ({"num_tasks": 12}, 1, 6),  # the most of the 8 cores that 12 tasks split over evenly
    ({"num_tasks": 7}, 1, 7),
    ({"num_tasks": 5, "devices": 3}, 1, 3),  # asked for: as given, on any machine
    ({"num_tasks": 12}, 2, 8),  # 2 member groups of the 4 task devices 12 tasks split over on 4 cores
    ({"algo": "pearl", "num_tasks": 8, "task_pool": 40}, 1, 8),
    ({"algo": "pearl", "num_tasks": 8, "task_pool": 20}, 1, 4),  # a latent learner's pool splits too
])
def test_a_training_splits_the_cpu_into_devices_its_tasks_divide(monkeypatch, settings, members, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert cli._cpu_devices(MetaConfig(**settings), members) == expected


@pytest.mark.parametrize("command", ["train", "sweep", "protocol"])
def test_every_training_command_splits_the_cpu_unless_flags_or_a_cluster_say_otherwise(monkeypatch, command):
    class Started(Exception):  # the command got past its split, to where JAX's backend may start
        pass

    def started(*args, **kwargs):
        raise Started

    from metaq_jax import distributed, protocol
    monkeypatch.setattr(distributed, "initialize", started)  # train's and sweep's next step
    monkeypatch.setattr(protocol, "check_training", started)  # protocol's
    monkeypatch.setattr(cli, "_cache_compiles", lambda: None)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["metaq", command, "--num-tasks", "6"])

    def flags_after(xla_flags, argv=None):
        monkeypatch.setenv("XLA_FLAGS", xla_flags)
        with pytest.raises(Started):
            cli.run(argv)
        return os.environ["XLA_FLAGS"]

    # the command line of a process: the CPU is split before JAX's backend starts
    assert flags_after("--xla_backend_optimization_level=0") == \
        "--xla_backend_optimization_level=0 --xla_force_host_platform_device_count=3"
    assert flags_after("--xla_force_host_platform_device_count=1") == "--xla_force_host_platform_device_count=1"
    # called from Python: JAX may be running already, nothing is split
    assert flags_after("", [command, "--num-tasks", "6"]) == ""
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")  # a multi-process run: each process's devices are its own
    assert flags_after("") == ""


def test_train_keeps_a_complete_run_dir(reference):
    run_dir, out = reference
    assert "metaq train: maml (gradient) on bandit" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"done: {META_STEPS} meta-steps in ")
    assert "held-out return after 0/1/2/3 inner steps: " in summary and "(pretrain " in summary
    assert {"config.json", "metrics.csv", "tensorboard", "checkpoints", "adaptation.png", "intervals.png"} <= set(
        os.listdir(run_dir))
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints")), key=int) == ["39", "40"]
    assert len(_metrics(run_dir).splitlines()) == META_STEPS + 1
    assert os.listdir(os.path.join(run_dir, "tensorboard"))[0].startswith("events.out.tfevents")


def test_eval_json_is_one_object(reference, capsys):
    cli.main(["eval", "--run-dir", reference[0], "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report["family"], report["algo"], report["kind"]) == ("bandit", "maml", "gradient")
    assert report["protocols"]["inner_steps"]["points"] == [0, 1, 2, 3]
    assert report["protocols"]["trial"]["points"] == [1, 2]
    for part in report["protocols"].values():
        assert list(part["rows"]) == ["meta-learned", "random_init", "oracle", "ucb1", "thompson", "random_play"]
        assert all(len(row["mean"]) == len(row["ci95"]) == len(part["points"]) for row in part["rows"].values())


def test_protocol_writes_report_table_and_plot(tmp_path, capsys):
    out = tmp_path / "results"
    cli.main(["protocol", *TINY, "--meta-steps", "2", "--out", str(out)])
    table = (out / "protocol.md").read_text()
    assert table.startswith("**trial**") and "| pretrain |" in table and "| oracle |" in table
    report = json.loads((out / "protocol.json").read_text())
    assert report["config"]["meta_steps"] == 2 and "pretrain" in report["protocols"]["trial"]["rows"]
    assert report["training"]["devices"] == jax.local_device_count()  # trained on every device there is
    assert f"Training on {jax.local_device_count()} device(s): seeds 0;" in table
    assert (out / "protocol.png").stat().st_size > 0 and table.strip() in capsys.readouterr().out
    assert (out / "protocol_intervals.png").stat().st_size > 0
    assert sorted(os.listdir(out)) == ["protocol.json", "protocol.md", "protocol.png", "protocol_intervals.png",
                                       "protocol_scores.npz"]  # its checkpoints removed once the report is written
    scores = np.load(out / "protocol_scores.npz")  # every trial's return, [runs, tasks, points] per row
    for protocol, part in report["protocols"].items():
        for name, row in part["rows"].items():
            assert "scores" not in row and scores[f"{protocol}/{name}"].shape[1:] == (part["tasks"], len(part["points"]))
            np.testing.assert_allclose(scores[f"{protocol}/{name}"].mean(axis=(0, 1)), row["mean"], atol=2e-4)


def test_config_file_with_flags_over_it(reference, tmp_path, capsys):
    """`--config` loads a saved config; a flag overrides it (checked by the config it refuses)."""
    cli.main(["eval", "--run-dir", reference[0]])
    assert "| random_init |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["train", "--config", os.path.join(reference[0], "config.json"), "--meta-steps", "7",
                  "--run-dir", reference[0], "--resume"])
    assert "differs in meta_steps=7)" in capsys.readouterr().err


def _wait_for_row(metrics, step, proc, old_inode):
    """Wait until a resumed trainer has rewritten metrics.csv and logged meta-step `step`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the trainer ended before it could be killed"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            if os.stat(metrics).st_ino != old_inode:
                with open(metrics) as f:
                    rows = [r for r in f.read().split("\n")[1:-1] if r]
                if rows and int(rows[-1].split(",")[0]) >= step:
                    return
        time.sleep(0.002)
    raise AssertionError("the trainer logged nothing in time")


def test_sigkill_and_resume_is_bit_identical(reference, tmp_path):
    run_dir = str(tmp_path / "run")
    metrics = os.path.join(run_dir, "metrics.csv")
    command = [sys.executable, "-m", "metaq_jax", "train", *RUN, "--run-dir", run_dir]
    resume = lambda: ["--resume"] if checkpoints.latest_step(os.path.join(run_dir, "checkpoints")) is not None else []  # noqa: E731
    # with the test run's compile cache (conftest): the update compiles once, not four times; one
    # device, as the reference: no CPU split
    env = device_env(1)
    rng = random.Random(7)
    for target in sorted(rng.sample(range(1, META_STEPS - 1), KILLS)):
        old_inode = os.stat(metrics).st_ino if os.path.exists(metrics) else None
        proc = subprocess.Popen(command + resume(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _wait_for_row(metrics, target, proc, old_inode)
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    final = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env)
    assert final.returncode == 0, final.stderr
    assert _metrics(run_dir) == _metrics(reference[0])
    assert _digest(run_dir) == _digest(reference[0])


def test_diverging_run_stops_in_one_line(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *TINY, "--no-pretrain", "--inner-lr", "1e20", "--run-dir", run_dir])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("metaq: error: meta-step 0: non-finite meta-loss")
    assert f"last good checkpoint: {run_dir}/checkpoints/0" in err
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["0"]


def test_bad_value_in_a_subprocess_has_no_traceback():
    result = subprocess.run([sys.executable, "-m", "metaq_jax", "train", "--num-tasks", "abc"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == ("metaq: error: --num-tasks: invalid literal for int() with base 10: 'abc' "
                             "(allowed: INT); see metaq --help\n")


def _snapshot(root) -> dict[str, str]:
    """Every path under `root` with a hash of its bytes: equal snapshots, unchanged tree."""
    tree = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                tree[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(f.read()).hexdigest()
    return tree


def _damage_checkpoint(run_dir, how):
    """Damage the run's latest checkpoint: 'flip' a byte or 'truncate' its data, or its 'digest'."""
    if how == "digest":  # data that read back fine but are not what was saved
        meta = os.path.join(run_dir, "checkpoints", "40", "meta", "metadata")
        with open(meta) as f:
            values = json.load(f)
        with open(meta, "w") as f:
            json.dump({**values, "sha256": "0" * 64}, f)
        return
    data = os.path.join(run_dir, "checkpoints", "40", "payload", "d")
    for name in os.listdir(data):
        with open(os.path.join(data, name), "rb") as f:
            raw = bytearray(f.read())
        if how == "flip":
            raw[len(raw) - 200] ^= 0xFF
        raw = raw if how == "flip" else raw[: len(raw) // 2]
        with open(os.path.join(data, name), "wb") as f:
            f.write(bytes(raw))


def _setup(kind, tmp_path, reference_dir) -> str:
    """Make the run dir a case starts from: its path."""
    run_dir = str(tmp_path / "run")
    if kind == "empty":
        os.makedirs(run_dir)
    elif kind == "file":
        open(run_dir, "w").close()
    elif kind == "under_file":
        open(tmp_path / "file", "w").close()
        run_dir = str(tmp_path / "file" / "run")
    elif kind in ("done", "flip", "truncate", "digest", "no_checkpoint"):
        shutil.copytree(reference_dir, run_dir)
        if kind == "no_checkpoint":
            shutil.rmtree(os.path.join(run_dir, "checkpoints"))
        elif kind != "done":
            _damage_checkpoint(run_dir, kind)
    elif kind == "unfinished":  # a killed `metaq protocol` (no flags) left its training in results/
        args = cli.parse(["protocol"]).command
        config = cli.resolve_config(args.config, args.config_file, tuned=args.tuned)
        os.makedirs(tmp_path / "results" / TRAINING)
        with open(tmp_path / "results" / TRAINING / PLAN, "w") as f:
            json.dump({"config": config.to_dict(), "seeds": [0]}, f)
    return run_dir


BAD = [  # (argv after `metaq`, how the run dir starts, config file text, expected message)
    (["train", "--family", "atari"], "new", None, "MetaConfig.family = 'atari': must be one of "),
    (["train", "--algo", "dqn"], "new", None, "MetaConfig.algo = 'dqn': must be one of maml, fomaml, reptile, pretrain, rl2, pearl, mql"),
    (["train", "--inner-steps", "0"], "new", None,  # the default job's tuned step_losses needs an inner step
     "MetaConfig.step_losses = True: needs algo maml or fomaml and inner_steps >= 1 (got algo maml, inner_steps 0); "
     "step_losses = True is a setting tuned for nav2d maml: give its flag, or --no-tuned to start from the defaults"),
    (["train", "--algo", "rl2", "--inner-steps", "1"], "new", None,
     "MetaConfig.inner_steps = 1: not used by algo rl2 (a memory learner; inner_steps is for gradient learners)"),
    (["train", "--algo", "rl2", "--meta-sgd"], "new", None, "MetaConfig.meta_sgd = True: not used by algo rl2"),
    (["train", "--algo", "rl2", "--network", "tabular"], "new", None,
     "MetaConfig.network = 'tabular': must be one of mlp, attention"),
    (["train", "--cell", "lstm"], "new", None, "MetaConfig.cell = 'lstm': not used by algo maml"),
    (["protocol", "--algo", "rl2", "--network", "attention", "--cell-size", "8"], "new", None,
     "MetaConfig.cell_size = 8: not used with network 'attention'"),
    (["protocol", "--train-seeds", "0"], "new", None, "--train-seeds = 0: must be a positive integer"),
    (["train", "--num-tasks", "0"], "new", None, "MetaConfig.num_tasks = 0: must be a positive integer"),
    (["train", "--num-tasks", "-3"], "new", None, "MetaConfig.num_tasks = -3: must be a positive integer"),
    (["train", "--num-tasks", "abc"], "new", None, "--num-tasks: invalid literal for int()"),
    (["train", "--num-envs", "2.5"], "new", None, "--num-envs: invalid literal for int()"),
    (["train", "--num-envs"], "new", None, "--num-envs: a value is required (allowed: INT); see metaq train --help"),
    (["frob"], "new", None, "Unrecognized options: frob; see metaq --help"),
    ([], "new", None, "a command is required (none given): one of train, sweep, eval, protocol, bench, families"),
    (["--import", "no_such_module_xyz", "families"], "new", None,
     "--import no_such_module_xyz: no module named 'no_such_module_xyz'"),
    (["protocol", "--num-seeds", "0"], "new", None, "--num-seeds = 0: must be a positive integer"),
    (["protocol", "--family", "atari"], "new", None, "MetaConfig.family = 'atari': must be one of "),
    (["train", "--rollout-length", "0"], "new", None, "MetaConfig.rollout_length = 0: must be a positive integer"),
    (["train", "--meta-steps", "0"], "new", None, "MetaConfig.meta_steps = 0: must be a positive integer"),
    (["train", "--inner-steps", "-1"], "new", None, "MetaConfig.inner_steps = -1: must be an integer >= 0"),
    (["train", "--hidden-sizes", "8", "0"], "new", None, "MetaConfig.hidden_sizes = (8, 0): must be a tuple of positive"),
    (["train", "--inner-lr", "nan"], "new", None, "MetaConfig.inner_lr = nan: must be a finite number >= 0"),
    (["train", "--inner-lr", "inf"], "new", None, "MetaConfig.inner_lr = inf: must be a finite number >= 0"),
    (["train", "--inner-lr", "-0.1"], "new", None, "MetaConfig.inner_lr = -0.1: must be a finite number >= 0"),
    (["train", "--outer-optimizer", "rmsprop"], "new", None, "must be one of adam, sgd"),
    (["train", "--epsilon", "1.5"], "new", None, "MetaConfig.epsilon = 1.5: must be a finite number >= 0 and <= 1"),
    (["train", "--checkpoint-every", "0"], "new", None, "RunOptions.checkpoint_every = 0: must be a positive integer"),
    (["train", "--keep-last", "0"], "new", None, "RunOptions.keep_last = 0: must be a positive integer"),
    (["train", "--log-every", "-1"], "new", None, "RunOptions.log_every = -1: must be a positive integer"),
    (["train", "--learning-rate", "1"], "new", None, "Unrecognized options: --learning-rate"),
    (["train", "--resume"], "new", None, "--resume: run dir {run} holds no checkpoint"),
    (["train", "--resume"], "empty", None, "--resume: run dir {run} holds no checkpoint"),
    (["train", *RUN, "--resume"], "no_checkpoint", None, "--resume: run dir {run} holds no checkpoint"),
    (["train", "--resume", "--num-tasks", "3"], "done", None, "run dir {run} holds another config (differs in num_tasks=3)"),
    (["train", *RUN], "done", None, "run dir {run} already holds a run (checkpoint 40); pass --resume"),
    (["train", *TINY], "done", None, "run dir {run} holds another config (differs in meta_steps=900)"),
    (["train", "--resume"], "flip", None, "checkpoint {run}/checkpoints/40 is unreadable (ValueError); it is corrupt"),
    (["train", "--resume"], "digest", None, "checkpoint {run}/checkpoints/40 fails its checksum; it is corrupt"),
    (["train", "--resume"], "truncate", None, "checkpoint {run}/checkpoints/40 is unreadable (ValueError); it is corrupt or truncated"),
    (["eval"], "truncate", None, "checkpoint {run}/checkpoints/40 is unreadable"),
    (["train"], "file", None, "run dir {run}: exists and is not a directory"),
    (["train"], "under_file", None, "run dir {run}: cannot be written"),
    (["train", "--config", "{cfg}"], "new", None, "config file {cfg}: cannot be read (No such file or directory)"),
    (["train", "--config", "{cfg}"], "new", "{not json", "config file {cfg}: not valid JSON (line 1)"),
    (["train", "--config", "{cfg}"], "new", "[1, 2]", "config file {cfg}: must hold a JSON object"),
    (["train", "--config", "{cfg}"], "new", '{"num_taks": 4}', "MetaConfig: unknown field(s) num_taks"),
    (["train", "--config", "{cfg}"], "new", '{"num_tasks": "4"}', "MetaConfig.num_tasks = '4': must be a positive integer"),
    (["train", "--family", "cheetah-vel", "--algo", "rl2", "--network", "attention"], "new", None,
     "MetaConfig.network = 'attention': not available on family cheetah-vel"),
    (["protocol", "--family", "ant-dir", "--meta-sgd"], "new", None, "MetaConfig.meta_sgd = True: not available on family ant-dir"),
    (["sweep", "--family", "cheetah-dir", "--seeds", "2", "--step-losses"], "new", None,
     "MetaConfig.step_losses = True: not available on family cheetah-dir"),
    (["protocol", "--resume"], "new", None, "--resume: {out}/training holds no unfinished protocol; start it without"),
    (["protocol"], "unfinished", None, "{out}/training holds an unfinished protocol; pass --resume to continue it"),
    (["protocol", "--resume", "--num-tasks", "3"], "unfinished", None,
     "--resume: {out}/training holds a protocol of another config (differs in num_tasks=3)"),
    (["protocol", "--resume", "--train-seeds", "2"], "unfinished", None, "(differs in training seeds [0, 1])"),
    (["eval"], "empty", None, "run dir {run} holds no run (no config.json)"),
    (["eval"], "no_checkpoint", None, "run dir {run} holds no checkpoint"),
]


@pytest.mark.parametrize("argv, kind, config_text, message", BAD,
                         ids=[f"{i:02d}-{' '.join(c[0][:3])}-{c[1]}" for i, c in enumerate(BAD)])
def test_bad_input_exits_2_in_one_line_and_changes_nothing(argv, kind, config_text, message, reference,
                                                           tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default run dir would appear under tmp_path/runs
    run_dir = _setup(kind, tmp_path, reference[0])
    cfg = str(tmp_path / "config.json")
    if config_text is not None:
        with open(cfg, "w") as f:
            f.write(config_text)
    argv = [a.format(cfg=cfg) for a in argv]
    if argv[:1] == ["protocol"]:
        argv += ["--out", str(tmp_path / "results")]
    elif kind != "new" or "--resume" in argv:
        argv += ["--run-dir", run_dir]
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and err.startswith("metaq: error: ")
    assert message.format(run=run_dir, cfg=cfg, out=tmp_path / "results") in err
    assert _snapshot(tmp_path) == before


def test_an_internal_error_shows_its_traceback_and_exits_1(monkeypatch, capsys, tmp_path):
    """A ValueError from our own code is a bug, not bad input: the whole traceback, exit 1."""
    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(session, "prepare_run", broken)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *TINY, "--no-pretrain", "--run-dir", str(tmp_path / "run")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: a bug, not bad input" in err
    assert err.rstrip().splitlines()[-1].startswith("metaq: internal error: this is a bug in metaq_jax")
    assert not os.path.exists(tmp_path / "run")


PLUGIN = """
import dataclasses
from metaq_jax import register_family
from metaq_jax.tasks import make_bandit


def make_mine(**overrides):
    return dataclasses.replace(make_bandit(3, 10, **overrides), name="mine",
                               description="my own three-armed bandit")
"""


def _plugin_env(tmp_path, *, entry_point: bool) -> dict:
    """A folder on PYTHONPATH with the module `my_families`, and its entry point if asked."""
    (tmp_path / "my_families.py").write_text(PLUGIN + ("" if entry_point else '\nregister_family("mine", make_mine)\n'))
    if entry_point:  # what `pip install` of a package declaring the entry point leaves behind
        dist = tmp_path / "my_families-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-families\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[metaq_jax.families]\nmine = my_families:make_mine\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_a_family_registered_by_an_imported_module_trains(tmp_path):
    run_dir = tmp_path / "run"
    argv = ["--import", "my_families", "train", "--family", "mine", "--num-tasks", "2", "--num-envs", "2",
            "--rollout-length", "10", "--hidden-sizes", "8", "--inner-steps", "1", "--meta-steps", "2", "--trial-episodes", "1",
            "--no-pretrain", "--run-dir", str(run_dir)]
    env = {k: v for k, v in _plugin_env(tmp_path, entry_point=False).items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # no cache named: the command keeps its own (its programs are new)
    result = subprocess.run([sys.executable, "-m", "metaq_jax", *argv], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "config.json").read_text())["family"] == "mine"
    assert [row.split(",")[0] for row in _metrics(run_dir).decode().splitlines()[1:]] == ["0", "1"]
    assert os.listdir(tmp_path / "cache" / "metaq_jax" / "xla")  # the compiled programs, for the next run


def test_an_installed_entry_point_is_a_family(tmp_path):
    result = subprocess.run([sys.executable, "-m", "metaq_jax", "families"], env=_plugin_env(tmp_path, entry_point=True),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ["mine", "my own three-armed bandit"] in [line.split(maxsplit=1) for line in result.stdout.splitlines()]


def test_a_reader_that_goes_away_is_not_an_internal_error():
    """`metaq families | head -1`: the closed pipe ends the command quietly, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "metaq_jax", "families"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().split()[0] == "acrobot"
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) in (0, 1) and err == ""  # 0 if all was written before the close
