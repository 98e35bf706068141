"""`metaq sweep`: flags refused naming the field, nothing written; a sweep stopped and resumed
equals the sweep done at once; each member's log is `metaq train`'s for that member alone."""

import csv
import json
import os

import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import cli, population, runs, session, sweep

from helpers import trees_equal

TINY = dict(family="nav2d", num_tasks=2, num_envs=2, rollout_length=10, hidden_sizes=(8,), meta_steps=3,
            trial_episodes=1)
FLAGS = ["--family", "nav2d", "--num-tasks", "2", "--num-envs", "2", "--rollout-length", "10", "--hidden-sizes", "8",
         "--meta-steps", "3", "--trial-episodes", "1"]
MEMBERS = population.grid_members([0], {"inner_lr": [0.1, 0.3]})


class Stop(Exception):
    """Raised from `on_step` to stop a sweep as a crash would, after a checkpoint."""


@pytest.mark.parametrize("items, message", [
    (["inner_lr="], "--grid inner_lr=: no values"),
    (["gamma=a,b"], "--grid gamma=a,b: 'a' is not a number"),
    (["hidden_sizes=8,16"], "hidden_sizes changes array shapes or the compiled program"),
    (["num_envs=2,4"], "num_envs changes array shapes"),
    (["learning_rate=0.1"], "learning_rate is not a MetaConfig field"),
    (["gamma=0.1", "gamma=0.2"], "gamma is given twice"),
    (["target_update_period=1.5"], "target_update_period takes integers"),
    (["inner_lr"], "must be field=values"),
])
def test_a_malformed_grid_is_refused_naming_it(items, message):
    with pytest.raises(mq.InputError, match=message.replace("(", r"\(")):
        sweep.parse_grid(items)


def test_random_members_are_drawn_in_their_ranges_and_again_the_same():
    ranges = ["inner_lr=0.01:1:log", "gamma=0:0.5", "target_update_period=1:20"]
    members = sweep.random_members([0, 1], ranges, 8, seed=3)
    assert members == sweep.random_members([0, 1], ranges, 8, seed=3)
    assert [m["seed"] for m in members] == [0] * 8 + [1] * 8 and members[:8] == [{**m, "seed": 0} for m in members[8:]]
    assert all(0.01 <= m["inner_lr"] <= 1 and 0 <= m["gamma"] <= 0.5 and isinstance(m["target_update_period"], int)
               for m in members)
    with pytest.raises(mq.InputError, match="needs low <= high and low > 0 for :log"):
        sweep.random_members([0], ["inner_lr=0:1:log"], 2, seed=0)


@pytest.mark.parametrize("extra, message", [
    (["--grid", "inner_lr="], "--grid inner_lr=: no values"),
    (["--grid", "gamma=0,2"], "MetaConfig.gamma = 2.0: must be a finite number >= 0 and <= 1"),
    (["--grid", "inner_lr=0.1", "--random", "2"], "give a grid or random draws, not both"),
    (["--seeds", "0"], "--seeds = 0: must be a positive integer"),
])
def test_the_cli_refuses_a_bad_sweep_with_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", *FLAGS, "--run-dir", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The sweep done at once, and the same sweep stopped after 2 of 3 meta-steps and resumed."""
    root, config = tmp_path_factory.mktemp("sweep"), mq.MetaConfig(**TINY)
    options = runs.RunOptions(checkpoint_every=1)
    whole = sweep.prepare_sweep(config, MEMBERS, str(root / "whole"))
    whole_results = sweep.train_sweep(whole, options)

    def stop_after_two(step, _):
        if step == 1:
            raise Stop

    with pytest.raises(Stop):
        sweep.train_sweep(sweep.prepare_sweep(config, MEMBERS, str(root / "cut")), options, on_step=stop_after_two)
    resumed = sweep.prepare_sweep(config, MEMBERS, str(root / "cut"), resume=True)
    resumed_results = sweep.train_sweep(resumed, options)
    return root, config, resumed, whole_results, resumed_results


def test_a_stopped_sweep_resumes_exactly(sweeps):
    root, _, resumed, whole_results, resumed_results = sweeps
    assert resumed.resumed and int(resumed.population.states.step[0]) == 2
    again = sweep.prepare_sweep(mq.MetaConfig(**TINY), MEMBERS, str(root / "whole"), resume=True).population
    cut = sweep.prepare_sweep(mq.MetaConfig(**TINY), MEMBERS, str(root / "cut"), resume=True).population
    assert trees_equal(again.states, cut.states)
    assert resumed_results == whole_results
    for i in range(len(MEMBERS)):
        with open(root / "whole" / "members" / str(i) / runs.METRICS) as a, \
                open(root / "cut" / "members" / str(i) / runs.METRICS) as b:
            assert a.read() == b.read()


def test_sweep_json_holds_every_member_with_its_result_and_a_plot_is_drawn(sweeps):
    root, *_ = sweeps
    with open(root / "whole" / sweep.SWEEP) as f:
        stored = json.load(f)
    assert stored["members"] == MEMBERS and [r["member"] for r in stored["results"]] == MEMBERS
    assert all(np.isfinite(r["trial_total"]) and len(r["inner_steps"]) == 4 and set(r["final"]) >= {"meta_loss"}
               for r in stored["results"])
    assert os.path.getsize(root / "whole" / sweep.SWEEP_PLOT) > 0


def test_each_member_logs_what_its_run_alone_logs(sweeps, tmp_path):
    root, config, *_ = sweeps
    alone = population.member_config(config, MEMBERS[1])
    session.train_run(session.prepare_run(alone, str(tmp_path / "alone")))

    def rows(file):
        with open(file) as f:
            return list(csv.DictReader(f))

    mine, theirs = rows(root / "whole" / "members" / "1" / runs.METRICS), rows(tmp_path / "alone" / runs.METRICS)
    assert [list(r) for r in mine] == [list(r) for r in theirs] == [list(runs.METRIC_COLUMNS)] * 3
    np.testing.assert_allclose([[float(v) for v in r.values()] for r in mine],
                               [[float(v) for v in r.values()] for r in theirs], rtol=2e-4, atol=2e-6)


def test_a_sweep_with_other_members_in_the_run_dir_is_refused(sweeps):
    root, config, *_ = sweeps
    with pytest.raises(mq.InputError, match="holds a sweep of other members"):
        sweep.prepare_sweep(config, population.grid_members([0], {"inner_lr": [0.2, 0.3]}), str(root / "whole"),
                            resume=True)


@pytest.mark.parametrize("inner_steps, rows", [([-9.0, -7.0, -6.0, -5.0], 2), (None, 1)])
def test_the_sweep_plot_draws_each_seeds_result_against_each_field(inner_steps, rows):
    members = population.grid_members([0, 1], {"inner_lr": [0.1, 0.3], "gamma": [0.0]})
    results = [{"member": m, "trial_total": 10 * m["seed"] + m["inner_lr"],
                "inner_steps": None if inner_steps is None else [*inner_steps[:-1], m["inner_lr"] - m["seed"]]}
               for m in members]
    fig = sweep.sweep_figure(results, mq.MetaConfig(**TINY))
    assert len(fig.axes) == 2 * rows  # [rows, fields]: a gradient learner's second row is its last inner step
    lr_total, _, *last = fig.axes
    assert [line.get_label() for line in lr_total.get_lines()] == ["seed 0", "seed 1"]
    np.testing.assert_allclose(lr_total.get_lines()[1].get_ydata(), [10.1, 10.3])
    if rows == 2:
        assert "after 3 inner steps" in last[0].get_ylabel()
        np.testing.assert_allclose(last[0].get_lines()[1].get_ydata(), [-0.9, -0.7])
