"""Run directories, checkpoints and the resumable loop, as a library (the CLI is in test_cli.py)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from metaq_jax import MetaConfig, checkpoints, runs, session
from metaq_jax.checkpoints import NonFiniteError

TINY = MetaConfig(family="bandit", num_tasks=2, num_envs=2, rollout_length=10, hidden_sizes=(8,),
                  meta_steps=12)
OPTIONS = runs.RunOptions(checkpoint_every=4, keep_last=1)


def _digest(run_dir) -> str:
    return checkpoints.tree_digest(session.load_run(str(run_dir))[3].params)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted TINY run: its directory."""
    run_dir = str(tmp_path_factory.mktemp("reference") / "run")
    session.train_run(session.prepare_run(TINY, run_dir), OPTIONS)
    return run_dir


def test_reference_run_keeps_everything(reference):
    names = set(os.listdir(reference))
    assert {runs.CONFIG, runs.METRICS, runs.TENSORBOARD, runs.CHECKPOINTS, runs.PLOT, runs.INTERVALS} <= names
    assert runs.stored_config(reference) == TINY.replace(devices=1)  # resolved: the one CPU device
    assert os.listdir(os.path.join(reference, runs.CHECKPOINTS)) == ["12"]  # keep_last=1
    with open(os.path.join(reference, runs.METRICS)) as f:
        rows = f.read().splitlines()
    assert rows[0] == ",".join(runs.METRIC_COLUMNS)
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(12))


def test_keep_metrics_before_drops_later_and_partial_rows(tmp_path):
    header = ",".join(runs.METRIC_COLUMNS) + "\n"
    (tmp_path / runs.METRICS).write_text(header + "0,1,a\n1,2,b\n2,3,c\n3,4")  # killed mid-line
    runs.keep_metrics_before(str(tmp_path), 2)
    assert (tmp_path / runs.METRICS).read_text() == header + "0,1,a\n1,2,b\n"


def test_a_stored_config_loads_whatever_its_unread_fields_hold(tmp_path):
    """A memory run's config.json written when the gradient fields had other defaults still loads."""
    stored = {**MetaConfig(algo="rl2", family="bandit-k5-n10").to_dict(), "inner_steps": 1, "inner_lr": 0.3}
    with open(tmp_path / "config.json", "w") as f:
        json.dump(stored, f)
    config = runs.stored_config(str(tmp_path))
    assert config == MetaConfig(algo="rl2", family="bandit-k5-n10")
    with pytest.raises(ValueError, match="MetaConfig.inner_steps = 1: not used by algo rl2"):
        MetaConfig.from_dict(stored)  # given as flags, the same values are refused


def test_default_run_dir_is_new(tmp_path):
    first = runs.default_run_dir(str(tmp_path))
    os.makedirs(first)
    assert runs.default_run_dir(str(tmp_path)) != first


def test_checkpoint_refuses_a_non_finite_state(reference, tmp_path):
    _, _, _, state = session.load_run(reference)
    bad = state._replace(params=jax.tree.map(lambda x: x * float("nan"), state.params))
    mgr = checkpoints.manager(str(tmp_path / "ckpt"), keep_last=1)
    with pytest.raises(NonFiniteError, match="non-finite state at meta-step 12"):
        checkpoints.save(mgr, bad, jax.random.key(0))
    mgr.close()
    assert checkpoints.latest_step(str(tmp_path / "ckpt")) is None


CRASH = textwrap.dedent("""
    import os, signal, sys
    from metaq_jax import MetaConfig, checkpoints, runs, session
    save = checkpoints.save
    def save_then_die(mgr, state, key):
        save(mgr, state, key)
        if int(state.step) == 8:
            os.kill(os.getpid(), signal.SIGKILL)  # while orbax still writes checkpoint 8
    checkpoints.save = save_then_die
    config = MetaConfig(family="bandit", num_tasks=2, num_envs=2, rollout_length=10,
                        hidden_sizes=(8,), meta_steps=12)
    run = session.prepare_run(config, sys.argv[1])
    session.train_run(run, runs.RunOptions(checkpoint_every=4, keep_last=1))
""")


def test_crash_mid_checkpoint_write_leaves_previous_checkpoint(reference, tmp_path):
    run_dir = str(tmp_path / "run")
    result = subprocess.run([sys.executable, "-c", CRASH, run_dir], capture_output=True)
    assert result.returncode == -9
    assert checkpoints.latest_step(os.path.join(run_dir, runs.CHECKPOINTS)) == 4  # 8 never completed
    assert int(session.load_run(run_dir)[3].step) == 4
    session.train_run(session.prepare_run(TINY, run_dir, resume=True), OPTIONS)
    assert _digest(run_dir) == _digest(reference)
    assert (tmp_path / "run" / runs.METRICS).read_bytes() == open(os.path.join(reference, runs.METRICS), "rb").read()


def test_non_finite_loss_stops_without_checkpointing_it(tmp_path):
    run_dir = str(tmp_path / "run")
    with pytest.raises(NonFiniteError) as error:
        session.train_run(session.prepare_run(TINY.replace(inner_lr=1e20), run_dir), OPTIONS)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("meta-step 0: non-finite")
    assert f"last good checkpoint: {os.path.abspath(run_dir)}/checkpoints/0" in message
    assert checkpoints.latest_step(os.path.join(run_dir, runs.CHECKPOINTS)) == 0


def test_skip_nonfinite_keeps_the_last_finite_state(tmp_path):
    run_dir = str(tmp_path / "run")
    run = session.prepare_run(TINY.replace(inner_lr=1e20, meta_steps=4), run_dir)
    result = session.train_run(run, runs.RunOptions(checkpoint_every=2, skip_nonfinite=True))
    rows = (tmp_path / "run" / runs.METRICS).read_text().splitlines()[1:]
    assert int(result.state.step) == 4 and len(rows) == 4
    assert any("inf" in row or "nan" in row for row in rows)  # some updates were skipped ...
    assert checkpoints.is_finite(result.state)  # ... and none of them reached the state
    assert checkpoints.is_finite(session.load_run(run_dir)[3])


def test_metrics_log_writes_csv_and_tensorboard_in_one_call(tmp_path):
    log = runs.MetricsLog(str(tmp_path), 0)
    scalars = dict(env_steps=10, meta_loss=0.1, support_loss=0.25, pre_return=-1.5, post_return=-1.0, grad_norm=3.0)
    log.write(0, scalars, volatile={"throughput/env_steps_per_s": 123.0})
    log.write(1, {**scalars, "env_steps": 20})
    log.close()
    rows = (tmp_path / runs.METRICS).read_text().splitlines()
    assert rows == [",".join(runs.METRIC_COLUMNS), "0,10,0.1,0.25,-1.5,-1.0,3.0", "1,20,0.1,0.25,-1.5,-1.0,3.0"]
    (events,) = os.listdir(tmp_path / runs.TENSORBOARD)
    raw = (tmp_path / runs.TENSORBOARD / events).read_bytes()
    assert b"train/meta_loss" in raw and b"train/env_steps" in raw and b"throughput/env_steps_per_s" in raw
