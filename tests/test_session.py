"""A run of every learner kind through the session: stopped, resumed exactly, evaluated, plotted."""

import json
import os

import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import checkpoints, cli, runs, session

from helpers import trees_equal  # helpers also registers the test-point and test-bandit families

MEMORY = dict(family="test-bandit", algo="rl2", num_tasks=2, num_envs=2, hidden_sizes=(8,), gamma=0.9,
              trial_episodes=2, meta_steps=3, cell_size=8)
LATENT = dict(family="test-bandit", algo="pearl", num_tasks=2, num_envs=2, hidden_sizes=(8,), gamma=0.9,
              trial_episodes=2, meta_steps=3, task_pool=3, batch_size=8, context_size=4, replay_size=64)
# each learner's own state: rl2's carry at a trial's start; pearl's pool of tasks, replay and context
LEARNERS = {"rl2": (MEMORY, "memory", {"initial_carry"}),
            "pearl": (LATENT, "latent", {"tasks", "replay", "context", "has_context"}),
            "mql": ({**LATENT, "algo": "mql", "context_size": 64, "history_length": 2, "adapt_steps": 1,
                     "propensity_samples": 8}, "latent", {"tasks", "replay"})}


class Stop(Exception):
    """Raised from `on_step` to stop a run as a crash would, after a checkpoint."""


def whole_and_resumed(config: mq.MetaConfig, tmp_path):
    """`config` run at once in tmp_path/whole, and stopped after 2 of 3 meta-steps in tmp_path/cut and
    resumed there: `(whole run, the prepared resumed run, its result)`."""
    options = runs.RunOptions(checkpoint_every=1)
    whole = session.train_run(session.prepare_run(config, str(tmp_path / "whole")), options)

    def stop_after_two(step, _):
        if step == 1:
            raise Stop

    with pytest.raises(Stop):
        session.train_run(session.prepare_run(config, str(tmp_path / "cut")), options, on_step=stop_after_two)
    resumed_run = session.prepare_run(config, str(tmp_path / "cut"), resume=True)
    return whole, resumed_run, session.train_run(resumed_run, options)


@pytest.mark.parametrize("algo", list(LEARNERS))
def test_a_memory_or_latent_learner_resumes_exactly_and_is_evaluated_on_trials(tmp_path, capsys, algo):
    """rl2 (GRU), pearl and mql stopped after 2 of 3 meta-steps and resumed equal the run done at
    once, through their own state (the carry at a trial's start; the replay) too; `metaq eval`
    then reports their trials (and a latent learner's support batch)."""
    fields, kind, own_state = LEARNERS[algo]
    whole, resumed_run, resumed = whole_and_resumed(mq.MetaConfig(**fields), tmp_path)
    assert resumed_run.resumed and int(resumed_run.state.step) == 2
    assert trees_equal(resumed.state, whole.state)  # params, target, optimiser and the learner's own state
    with open(tmp_path / "whole" / runs.METRICS) as a, open(tmp_path / "cut" / runs.METRICS) as b:
        assert a.read() == b.read()
    restored = session.load_run(str(tmp_path / "cut"))[3]
    assert set(restored.learner_state) == own_state
    cli.main(["eval", "--run-dir", str(tmp_path / "cut"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report["kind"], list(report["protocols"])) == (kind, ["trial", "support"] if kind == "latent" else ["trial"])
    if kind == "latent":  # MAML's protocol as a latent learner has it: before and after a support batch
        support = report["protocols"]["support"]["rows"]["meta-learned"]
        assert support == whole.report["protocols"]["support"]["rows"]["meta-learned"] and len(support["mean"]) == 2
    rows = report["protocols"]["trial"]["rows"]
    assert list(rows) == ["meta-learned", "random_init", "oracle", "ucb1", "thompson", "random_play",
                          "bayes_optimal"]
    assert rows["meta-learned"] == whole.report["protocols"]["trial"]["rows"]["meta-learned"]
    assert os.path.getsize(tmp_path / "cut" / runs.PLOT) > 0
    assert np.isfinite(rows["meta-learned"]["total"])
    assert checkpoints.latest_step(str(tmp_path / "cut" / runs.CHECKPOINTS)) == 3


def test_a_learner_over_td3_resumes_exactly_and_is_evaluated_on_trials(tmp_path, capsys):
    """pearl on a continuous-action family (TD3; its replay holds the actions as they are), stopped
    after 2 of 3 meta-steps and resumed, equals the run done at once; `metaq eval` reports its trials."""
    config = mq.MetaConfig(family="test-point", algo="pearl", num_tasks=2, num_envs=2, hidden_sizes=(16,),
                           meta_steps=3, trial_episodes=1, task_pool=3, batch_size=8, context_size=4, replay_size=64)
    whole, resumed_run, resumed = whole_and_resumed(config, tmp_path)
    assert resumed_run.resumed and int(resumed_run.state.step) == 2
    assert trees_equal(resumed.state, whole.state)
    assert resumed.state.learner_state["replay"].experience.action.dtype == np.float32
    cli.main(["eval", "--run-dir", str(tmp_path / "cut"), "--json"])
    protocols = json.loads(capsys.readouterr().out)["protocols"]
    for protocol in ("trial", "support"):
        assert protocols[protocol]["rows"]["meta-learned"] == whole.report["protocols"][protocol]["rows"]["meta-learned"]
