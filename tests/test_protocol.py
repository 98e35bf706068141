"""The meta-test protocol: every baseline present, oracle exact, table and report consistent."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metaq_jax as mq
from metaq_jax import baselines, checkpoints, protocol
from metaq_jax.tasks import nav2d


@pytest.fixture(scope="module")
def bandit_report():
    config = mq.MetaConfig(family="bandit", num_tasks=2, num_envs=2, meta_steps=3, hidden_sizes=(8,))
    return config, protocol.run_protocol(config)


def test_report_has_every_baseline_in_both_protocols(bandit_report):
    config, report = bandit_report
    assert (report["kind"], list(report["protocols"])) == ("gradient", ["trial", "inner_steps"])
    trial, steps = report["protocols"]["trial"], report["protocols"]["inner_steps"]
    assert (trial["x"], trial["points"]) == ("episode", [1, 2])  # config.trial_episodes
    assert (steps["x"], steps["points"]) == ("inner steps", [0, 1, 2, 3])
    names = ["meta-learned", "random_init", "pretrain", "oracle", "ucb1", "thompson", "random_play"]
    for part in (trial, steps):
        assert list(part["rows"]) == names
        for row in part["rows"].values():
            assert len(row["mean"]) == len(row["ci95"]) == len(part["points"])
    family = mq.make_family("bandit")
    oracle = 100 * np.max(np.asarray(family.test_tasks().arm_means), axis=1).mean()
    for part in (trial, steps):
        assert part["rows"]["oracle"]["mean"][0] == pytest.approx(oracle, rel=1e-5)
    assert trial["rows"]["oracle"]["total"] == pytest.approx(2 * oracle, rel=1e-5)  # two episodes
    # the oracle is a ceiling for the strategies that pay for their exploration
    for name in ("ucb1", "thompson", "random_play"):
        assert steps["rows"][name]["mean"][0] < steps["rows"]["oracle"]["mean"][0]
    # a trial's total is the sum of its episodes, trial by trial
    for row in trial["rows"].values():
        assert row["total"] == pytest.approx(sum(row["mean"]), abs=2e-4)
    # every row keeps its trials' returns as [runs][tasks][points], and its intervals hold their estimates
    num_tasks = family.test_tasks().arm_means.shape[0]
    for part in (trial, steps):
        assert part["tasks"] == num_tasks
        for name, row in part["rows"].items():
            scores = np.asarray(row["scores"])
            assert scores.shape[1:] == (num_tasks, len(part["points"]))
            np.testing.assert_allclose(scores.mean(axis=(0, 1)), row["mean"], atol=2e-4)
            for stat in ("mean", "iqm"):
                for value, (lo, hi) in zip(row[stat], row[f"{stat}_ci"]):
                    assert lo - 1e-4 <= value <= hi + 1e-4
            if name != "meta-learned":
                poi = row["improvement"]
                assert all(lo - 1e-4 <= p <= hi + 1e-4 and 0 <= p <= 1 for p, (lo, hi) in zip(poi["poi"], poi["poi_ci"]))
    assert trial["rows"]["meta-learned"]["total_iqm_ci"][0] <= trial["rows"]["meta-learned"]["total_iqm"]
    # the exact oracle's expected return beats nearly every realised trial of a barely trained learner
    assert steps["rows"]["oracle"]["improvement"]["poi"][0] < 0.5


def test_markdown_table_has_a_table_per_protocol_and_a_row_per_curve(bandit_report):
    _, report = bandit_report
    table = protocol.markdown_table(report)
    trial, steps = table.split("\n\n**inner_steps**")
    assert trial.startswith("**trial**: a trial of E episodes")
    assert "| learner | episode 1 | episode 2 | total |" in trial
    assert "| learner | inner steps 0 | inner steps 1 | inner steps 2 | inner steps 3 |" in steps
    assert "| meta-learned (maml) |" in trial and "| meta-learned (maml) |" in steps
    # three tables: mean and IQM for the 7 rows, P(meta-learned beats it) for the 6 baselines
    assert len([line for line in steps.splitlines() if line.startswith("| ")]) == 3 + 7 + 7 + 6
    ucb1 = report["protocols"]["inner_steps"]["rows"]["ucb1"]
    (lo, hi), (iqm_lo, iqm_hi) = ucb1["mean_ci"][2], ucb1["iqm_ci"][2]
    assert f"| ucb1 | {ucb1['mean'][0]:.2f} [" in steps and f"{ucb1['mean'][2]:.2f} [{lo:.2f}, {hi:.2f}]" in steps
    assert f"{ucb1['iqm'][2]:.2f} [{iqm_lo:.2f}, {iqm_hi:.2f}]" in steps
    poi, (poi_lo, poi_hi) = ucb1["improvement"]["poi"][2], ucb1["improvement"]["poi_ci"][2]
    assert f"{poi:.2f} [{poi_lo:.2f}, {poi_hi:.2f}]" in steps


def test_pretrain_baseline_uses_the_same_budget():
    config = mq.MetaConfig(meta_sgd=True, step_losses=True)
    pre = protocol.pretrain_config(config, mq.make_family("nav2d"))  # valid: the meta-learning options are dropped
    assert pre.algo == "pretrain" and not pre.meta_sgd and not pre.step_losses
    assert (pre.num_tasks, pre.num_envs, pre.rollout_length, pre.meta_steps) == (
        config.num_tasks, config.num_envs, config.rollout_length, config.meta_steps)
    memory = mq.MetaConfig(algo="rl2", network="attention", num_tasks=4, meta_steps=9, trial_episodes=3)
    pre = protocol.pretrain_config(memory, mq.make_family("nav2d"))  # the same tasks, meta-steps, rollouts' length
    assert (pre.algo, pre.network, pre.num_tasks, pre.meta_steps, pre.trial_episodes, pre.rollout_length) == (
        "pretrain", "mlp", 4, 9, 3, 300)


def test_a_memory_learner_is_reported_on_trials_beside_the_bandit_strategies():
    config = mq.MetaConfig(family="bandit-k5-n10", algo="rl2", num_tasks=2, num_envs=2, meta_steps=2,
                           hidden_sizes=(8,), cell_size=8, trial_episodes=1)
    report = protocol.run_protocol(config, num_seeds=2)
    assert (report["kind"], list(report["protocols"])) == ("memory", ["trial"])
    rows = report["protocols"]["trial"]["rows"]
    assert list(rows) == ["meta-learned", "random_init", "pretrain", "oracle", "ucb1", "thompson", "random_play",
                          "bayes_optimal"]  # 10 pulls: short enough for the exact Bayes-optimal strategy
    assert all(0 <= row["mean"][0] <= 10 for row in rows.values())  # 10 pulls of a 0/1 reward
    # the exact oracle is counted once per task, not once per trial
    family = mq.make_family("bandit-k5-n10")
    best = 10 * np.max(np.asarray(family.test_tasks().arm_means), axis=1)
    assert rows["oracle"]["ci95"][0] == pytest.approx(1.96 * best.std(ddof=1) / np.sqrt(best.size), abs=1e-4)
    assert "| meta-learned (rl2) |" in protocol.markdown_table(report)
    training = report["training"]
    assert training["env_steps"] == {"meta": 2 * 2 * 2 * 10, "pretrain": 2 * 2 * 2 * 2 * 10}  # steps × T × M × L (× 2)
    assert [c["step"] for c in training["curve"]["meta"]] == [[1, 2]]


def test_a_latent_learner_is_reported_on_trials_and_on_a_support_batch_beside_pretrain_fine_tuned():
    """pearl's report: the trial, and MAML's protocol as a latent learner has it (before and after
    one support batch), with pretrain's row beside (its curve at 0 and K = 1 steps: `with_support`,
    tests/test_evaluate.py)."""
    config = mq.MetaConfig(family="bandit-k5-n10", algo="pearl", num_tasks=2, num_envs=2, meta_steps=2,
                           hidden_sizes=(8,), trial_episodes=1, task_pool=2, batch_size=8, context_size=4,
                           replay_size=64, gradient_steps=1)
    report = protocol.run_protocol(config, num_seeds=2)
    assert (report["kind"], list(report["protocols"])) == ("latent", ["trial", "support"])
    support = report["protocols"]["support"]
    assert (support["x"], support["points"]) == ("support batches", [0, 1])
    assert list(support["rows"])[:3] == ["meta-learned", "random_init", "pretrain"]
    assert all(0 <= m <= 10 for row in support["rows"].values() for m in row["mean"])
    assert protocol.pretrain_config(config, mq.make_family(config.family)).inner_steps == 1  # its support row's K
    assert "**support**: MAML's protocol for a learner that adapts once" in protocol.markdown_table(report)


def test_nav2d_oracle_and_paper_goals():
    family = mq.make_family("nav2d")
    goals = np.asarray(family.test_tasks().goal)
    np.testing.assert_array_equal(goals, np.random.RandomState(1).uniform(-0.5, 0.5, (40, 2)).astype(np.float32))
    oracle = jax.vmap(family.oracle_return)(family.test_tasks())
    assert float(jnp.mean(oracle)) == pytest.approx(-3.9335, abs=1e-3)
    # the oracle equals rolling the greedy policy out in the environment itself
    task = jax.tree.map(lambda x: x[3], family.test_tasks())
    env, total, (obs, state) = family.env, 0.0, family.env.reset(jax.random.key(0), task)
    for _ in range(100):
        move = jnp.argmin(jnp.linalg.norm(obs[None] + 0.1 * nav2d.MOVES - task.goal[None], axis=-1))
        obs, state, reward, terminated, truncated, _ = env.step(jax.random.key(0), state, move, task)
        total += float(reward)
        if terminated or truncated:
            break
    assert total == pytest.approx(float(oracle[3]), rel=1e-5)


def test_training_runs_pool_every_row_but_the_oracle_no_run_changes():
    oracle = np.array([[8.0], [9.0], [7.0]])
    runs = [{"trial": {"meta-learned": np.full((3, 1), float(r)), "pretrain": np.full((3, 1), -1.0),
                       "oracle": oracle.copy()}} for r in range(3)]
    pooled = protocol.pool_runs(runs, once=("oracle",))["trial"]
    np.testing.assert_array_equal(pooled["meta-learned"], np.repeat([0.0, 1.0, 2.0], 3)[:, None])
    np.testing.assert_array_equal(pooled["oracle"], oracle)  # counted once, not once per run
    assert pooled["pretrain"].shape == (9, 1)  # runs of a trained row that happen to be equal are still runs
    runs[1]["trial"]["oracle"] = oracle + 1  # an oracle that does change between runs is pooled
    assert protocol.pool_runs(runs, once=("oracle",))["trial"]["oracle"].shape == (9, 1)


def test_a_saved_report_loads_back_with_its_intervals_as_text(bandit_report, tmp_path):
    _, report = bandit_report
    assert protocol.load_report(tmp_path) is None  # nothing written there yet
    protocol.save_report(report, str(tmp_path))
    loaded = protocol.load_report(tmp_path)
    row = loaded["protocols"]["trial"]["rows"]["meta-learned"]
    assert "scores" not in row and row["mean"] == pytest.approx(report["protocols"]["trial"]["rows"]["meta-learned"]["mean"])
    lo, hi = row["mean_ci"][0]
    assert protocol.interval_text(row, 0) == f"{row['mean'][0]:.2f} [{lo:.2f}, {hi:.2f}]"
    assert protocol.interval_text({"mean": [-3.931], "ci95": [0.494]}, 0) == "-3.93 ± 0.49"  # reports before rliable
    three = len(loaded["training"]["seeds"])
    five = {**loaded, "training": {**loaded["training"], "seeds": list(range(three + 2))}}
    assert protocol.seeds_text({"maml": loaded, "anil": loaded}) == f"{three} training seeds"
    assert protocol.seeds_text({"maml": five, "anil": loaded}) == f"training seeds (maml {three + 2}, anil {three})"


def test_tabular_mdp_strategies_play_whole_trials_and_join_the_trial_protocol_only():
    family = mq.make_family("tabular-mdp")
    tasks = jax.tree.map(lambda x: x[:3], family.test_tasks())
    key = jax.random.key(4)
    fixed = protocol.fixed_baselines(family, tasks, key, num_seeds=2, num_episodes=4)
    assert sorted(fixed) == ["certainty_equivalent", "oracle", "psrl"]
    assert fixed["oracle"].shape == (3,) and fixed["psrl"].shape == (2 * 3, 4)
    # seed-major: row s × T + t is the trial of task t with the (s, t) key
    keys = jax.random.split(key, (2, 3))
    one = baselines.play_mdp_trial(family.env, jax.tree.map(lambda x: x[2], tasks), keys[1, 2], 4,
                                   family.episode_length, sample=True)
    np.testing.assert_allclose(fixed["psrl"][1 * 3 + 2], one, rtol=1e-5)
    trial, steps = protocol.baseline_rows(fixed, "trial", 4), protocol.baseline_rows(fixed, "inner_steps", 4)
    assert sorted(trial) == ["certainty_equivalent", "oracle", "psrl"] and list(steps) == ["oracle"]
    np.testing.assert_array_equal(trial["psrl"], fixed["psrl"])
    np.testing.assert_array_equal(steps["oracle"], np.repeat(fixed["oracle"][:, None], 4, axis=1))
    assert list(protocol.baseline_rows(fixed, "trial", 3)) == ["oracle"]  # a trial of another length


class _Killed(Exception):
    """Stands for the protocol's process being killed."""


def test_a_killed_protocol_resumes_to_the_report_of_an_unbroken_one(tmp_path):
    config = mq.MetaConfig(family="bandit", num_tasks=2, num_envs=2, meta_steps=5, hidden_sizes=(8,))
    unbroken = protocol.run_protocol(config, train_seeds=2)
    folder = str(tmp_path / protocol.TRAINING)

    def kill(name, step, metrics):
        if (name, step) == ("meta", 2):  # after meta-step 3; its newest checkpoint is at 2
            raise _Killed

    with pytest.raises(_Killed):
        protocol.run_protocol(config, train_seeds=2, callback=kill, folder=folder, checkpoint_every=2)
    assert checkpoints.latest_step(os.path.join(folder, "meta", "checkpoints")) == 2
    assert not os.path.exists(os.path.join(folder, "pretrain"))
    with pytest.raises(mq.InputError, match="pass --resume"):
        protocol.check_training(folder, config, [0, 1], resume=False)
    with pytest.raises(mq.InputError, match=r"differs in meta_steps=6, training seeds \[0\]"):
        protocol.check_training(folder, config.replace(meta_steps=6), [0], resume=True)
    protocol.check_training(folder, config, [0, 1], resume=True)
    with np.load(os.path.join(folder, "meta", protocol.HISTORY)) as saved:
        earlier_s = float(saved["seconds"])  # the killed run's training time up to its checkpoint
    steps = []
    resumed = protocol.run_protocol(config, train_seeds=2, folder=folder, checkpoint_every=2,
                                    callback=lambda name, step, m: steps.append((name, step)))
    assert steps == [("meta", 2), ("meta", 3), ("meta", 4)] + [("pretrain", s) for s in range(5)]
    assert resumed["training"]["curve"] == unbroken["training"]["curve"]
    assert resumed["training"]["train_s"]["meta"] > earlier_s > 0  # the earlier run's time counts
    for name, part in unbroken["protocols"].items():
        for row, values in part["rows"].items():
            np.testing.assert_array_equal(resumed["protocols"][name]["rows"][row]["scores"], values["scores"], err_msg=row)
