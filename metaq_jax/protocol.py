"""The meta-test protocol: a meta-learned learner against honest baselines on held-out tasks.

Every learner is reported under the trial protocol (episodes 1..E of a trial on one task, the
learner adapting as its kind does); gradient learners also under MAML's (0..K inner steps on a
support batch). Baselines, each on the same test tasks with the same keys:
  random_init   a fresh initialisation of the same learner;
  pretrain      multi-task Q-learning on the same training tasks for the same number of
                meta-steps (`algo="pretrain"`), then fine-tuned by inner steps as a gradient
                learner is (pretrain + fine-tune);
  oracle        the family's exact optimal return per episode, where it has one (a ceiling);
  oracle_learned  elsewhere, Q-learners trained on each test task alone until their learning
                  curves stop rising, the best kept (`metaq_jax.oracle`); trained once per protocol;
  ucb1, thompson, random_play   classic strategies, on Bernoulli bandit families (each episode
                played afresh);
  bayes_optimal the exact Bayes-optimal strategy under the tasks' U[0, 1] prior, on bandits of
                at most 10 pulls (a ceiling no learner beats in expectation).
"""

import copy
import dataclasses
import json
import os
import time
from typing import Callable, Collection

import jax
import numpy as np
from jax.sharding import Mesh

from metaq_jax import baselines, checkpoints, distributed, oracle, population, runs
from metaq_jax.algos import make_meta_learner, make_problem
from metaq_jax.checkpoints import NonFiniteError
from metaq_jax.config import MetaConfig
from metaq_jax.errors import InputError
from metaq_jax.evaluate import (LEARNED, add_rows, constant_returns, count_tasks, learner_returns, paired_returns,
                                section, with_support)
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.registry import make_family
from metaq_jax.types import EnvParams, MetaState, Metrics

MIN_EVAL_STEPS = 3
"""The fewest inner steps a report's inner-steps curves run to, whatever `config.inner_steps` is."""
PROTOCOL_NOTES = {
    "trial": "a trial of E episodes on each held-out task; the learner adapts as its kind does (gradient: K "
             "inner steps on the trial's data every adapt_every env steps; memory: its state)",
    "inner_steps": "MAML's protocol: the return after 0..K inner steps on a support batch (gradient kind)",
    "support": "MAML's protocol for a learner that adapts once (latent kind): a fresh episode's return before (0) "
               "and after (1) adapting on a support batch of one episode in each environment (pearl: z from its "
               "posterior; mql: its adaptation); pretrain: before and after its K fine-tuning steps on its own "
               "support batch",
}
"""What each protocol is, for the reports' headings."""


MEMORY_PRETRAIN_FINE_TUNING = {"inner_steps": 1, "inner_lr": 0.3}
"""How a memory learner's pretraining baseline fine-tunes in a trial (K SGD steps of α at each
adaptation): a memory config has no gradient fields of its own to lend it."""


def pretrain_config(config: MetaConfig, family: TaskFamily) -> MetaConfig:
    """The pretraining baseline's config: the same budget, multi-task Q-learning, no meta-objective.

    Args:
      config: the meta-learner's config, of any kind.
      family: its family (a memory learner's trial length sets the rollouts').

    Returns:
      `config` as `algo="pretrain"`: Meta-SGD and step losses off, other kinds' fields at
      defaults; for a memory learner, rollouts as long as its trials (E × H steps) and the
      fine-tuning of `MEMORY_PRETRAIN_FINE_TUNING`.
    """
    if config.kind == "gradient":
        return config.replace(meta_sgd=False, step_losses=False).for_algo("pretrain")
    return config.for_algo("pretrain").replace(rollout_length=config.trial_episodes * family.episode_length,
                                               **MEMORY_PRETRAIN_FINE_TUNING)


def fixed_baselines(family: TaskFamily, tasks: EnvParams, key: jax.Array, *, num_seeds: int,
                    num_episodes: int = 1) -> dict[str, np.ndarray]:
    """Baselines that do not depend on learned parameters: oracle, bandit and tabular-MDP strategies.

    Args:
      family: gives `oracle_return` (the `oracle` baseline, where not None) and the env (the
        bandit strategies, on `BernoulliBandit` only: they assume 0/1 rewards; `bayes_optimal`
        where n <= `baselines.BAYES_OPTIMAL_MAX_PULLS`; PSRL and certainty equivalence on `TabularMDP`).
      tasks: task parameters with a leading `[T]` axis.
      key: consumed by the strategies; split per (seed, task).
      num_seeds: S, trials per task.
      num_episodes: E, episodes per trial, for the strategies that learn across a trial's episodes.

    Returns:
      `name -> [S × T]` the return of one episode per trial, seed-major, for a strategy that does
      not learn across episodes (the bandits': a trial is one episode); `name -> [S × T, E]` each
      episode's return for one that does (`baselines.MDP_STRATEGIES`); the oracle's `[T]`, once
      per task (it is exact: repeating it over trials would narrow its interval, not inform it).
    """
    from metaq_jax.tasks.bandit import BernoulliBandit  # not at import: gymnax starts JAX's backend
    from metaq_jax.tasks.tabular import TabularMDP

    out = {}
    if family.oracle_return is not None:
        out["oracle"] = np.asarray(jax.vmap(family.oracle_return)(tasks))
    num_tasks = jax.tree.leaves(tasks)[0].shape[0]
    keys = jax.random.split(key, (num_seeds, num_tasks))
    if type(family.env) is BernoulliBandit:  # not its Gaussian subclass: these assume 0/1 rewards
        num_pulls = int(np.asarray(tasks.max_steps_in_episode)[0])
        for name, policy in baselines.BANDIT_POLICIES.items():
            play = jax.vmap(jax.vmap(lambda k, means: baselines.play(policy, k, means, num_pulls)),
                            in_axes=(0, None))
            out[name] = np.asarray(jax.jit(play)(keys, tasks.arm_means)).reshape(-1)
        if num_pulls <= baselines.BAYES_OPTIMAL_MAX_PULLS:
            rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))
            means = np.asarray(tasks.arm_means)
            out["bayes_optimal"] = np.array([baselines.play_bayes_optimal(rng, means[t], num_pulls)
                                             for _ in range(num_seeds) for t in range(num_tasks)])
    if isinstance(family.env, TabularMDP):
        for name, sample in baselines.MDP_STRATEGIES.items():
            play = jax.vmap(jax.vmap(lambda k, task, sample=sample: baselines.play_mdp_trial(
                family.env, task, k, num_episodes, family.episode_length, sample=sample)), in_axes=(0, None))
            out[name] = np.asarray(jax.jit(play)(keys, tasks)).reshape(-1, num_episodes)
    return out


def baseline_rows(fixed: dict[str, np.ndarray], protocol: str, num_points: int) -> dict[str, np.ndarray]:
    """`fixed_baselines`' rows as a report section's `[N, P]` returns.

    Args:
      fixed: `name -> [N]` (a strategy that does not adapt: its return at every point) or `[N, E]`
        (a strategy that learns across a trial's E episodes: in the trial protocol only).
      protocol: the section's protocol.
      num_points: P, the section's points.

    Returns:
      `name -> [N, P]`.
    """
    out = {}
    for name, returns in fixed.items():
        returns = np.asarray(returns)
        if returns.ndim == 1:
            out[name] = constant_returns(returns, num_points)
        elif protocol == "trial" and returns.shape[1] == num_points:
            out[name] = returns
    return out


def add_fixed_baselines(report: dict, named: dict[str, np.ndarray]) -> dict:
    """Add `fixed_baselines`' rows to every section of `report` (`baseline_rows`).

    Args:
      report: a `meta_test` report; changed in place.
      named: `fixed_baselines`' `name -> [N]` or `[N, E]`.

    Returns:
      `report` itself.
    """
    for protocol, part in report["protocols"].items():
        add_rows(report, protocol, baseline_rows(named, protocol, len(part["points"])))
    return report


def test_sizes(config: MetaConfig, num_seeds: int = 1) -> dict:
    """E, K and S of every curve of a meta-test of `config`'s learner, and its tasks tested at once:
    the keyword arguments of `evaluate.learner_returns`, `paired_returns`, `meta_test` and
    `population.member_returns`.

    Args:
      config: its `trial_episodes`, `inner_steps` (at least `MIN_EVAL_STEPS` are tested) and `test_batch`.
      num_seeds: S, trials per task.

    Returns:
      `{"num_episodes", "num_steps", "num_seeds", "test_batch"}`.
    """
    return dict(num_episodes=config.trial_episodes, num_steps=max(MIN_EVAL_STEPS, config.inner_steps),
                num_seeds=num_seeds, test_batch=config.test_batch)


def learned_oracle(config: MetaConfig, family: TaskFamily, key: jax.Array, *, num_seeds: int,
                   budget: oracle.OracleBudget) -> oracle.OracleRun | None:
    """The learned oracle on `family`'s test tasks (with the pretraining config's network), or None
    where the family has an exact one or continuous actions (the oracle is a Q-learner of discrete ones).

    Args:
      config: the meta-learner's config (its network and `eval_epsilon`).
      family: the task family.
      key: consumed.
      num_seeds: S, learners per test task.
      budget: how each learner trains and stops.

    Returns:
      The `OracleRun` over `[S × T]` learners, or None.
    """
    if family.oracle_return is not None or family.continuous_actions:
        return None
    problem = make_problem(pretrain_config(config, family), family)
    return oracle.learned_oracle(problem, problem.init_params(key), family.test_tasks(), key, num_seeds=num_seeds,
                                 budget=budget)


def oracle_summary(run: oracle.OracleRun, budget: oracle.OracleBudget) -> dict:
    """The learned oracle's learning, JSON-ready: its budget, the mean learning curve and where each learner stopped.

    Args:
      run: the `OracleRun`.
      budget: its budget.

    Returns:
      `{"budget", "eval_rounds", "curve_mean", "rounds", "gamma"}`: `curve_mean[i]` the mean greedy
      return at round `eval_rounds[i]` over the learners still training then; `rounds` and `gamma`
      per learner (seed-major).
    """
    curves = np.asarray(run.curves)
    training = ~np.isnan(curves).all(axis=0)
    mean = [float(np.nanmean(curves[:, i])) if training[i] else None for i in range(curves.shape[1])]
    return {"budget": dataclasses.asdict(budget), "eval_rounds": [budget.eval_every * (i + 1) for i in range(len(mean))],
            "curve_mean": [None if m is None else round(m, 4) for m in mean],
            "rounds": [int(r) for r in run.rounds], "gamma": [float(g) for g in run.gammas]}


def _fixed_rows(config: MetaConfig, family: TaskFamily, key: jax.Array, *, num_seeds: int,
                learned: oracle.OracleRun | None) -> dict[str, np.ndarray]:
    """The baselines no meta-training changes, `name -> [S × T]` per trial (or `[S × T, E]` per
    episode): `fixed_baselines`, and `learned`'s returns as `oracle_learned` where there is one."""
    fixed = fixed_baselines(family, family.test_tasks(), key, num_seeds=num_seeds, num_episodes=config.trial_episodes)
    if learned is not None:
        fixed["oracle_learned"] = np.asarray(learned.returns)
    return fixed


def _with_baselines(learned: dict, pretrain: dict, fixed: dict[str, np.ndarray],
                    pretrain_steps: int) -> dict[str, dict[str, np.ndarray]]:
    """`protocol -> rows`: the learner's rows (meta-learned, random_init), then pretrain (its
    support row from its first `pretrain_steps` inner steps), then the fixed baselines (`baseline_rows`)."""
    pretrain, out = with_support(pretrain, pretrain_steps), {}
    for protocol, rows in learned.items():
        points = rows[LEARNED].shape[1]
        out[protocol] = {**{name: np.asarray(r) for name, r in rows.items()}, "pretrain": np.asarray(pretrain[protocol]),
                         **baseline_rows(fixed, protocol, points)}
    return out


def protocol_returns(config: MetaConfig, family: TaskFamily, state: MetaState, pretrained: MetaState,
                     key: jax.Array, *, num_seeds: int = 1,
                     oracle_budget: oracle.OracleBudget = oracle.OracleBudget()) -> dict[str, dict[str, np.ndarray]]:
    """Every trial's returns of a meta-learned `state` and of every baseline, per protocol.

    E is `config.trial_episodes`; K is `max(MIN_EVAL_STEPS, config.inner_steps)`; every curve is
    on `family.test_tasks()` with the same key.

    Args:
      config: the meta-learner's config, of any kind.
      family: the task family `config.family` names.
      state: the meta-learned state.
      pretrained: the pretraining baseline's state (`pretrain_config(config, family)`).
      key: consumed; shared by every curve, so they are paired.
      num_seeds: S, trials per test task.
      oracle_budget: the learned oracle's training, for families with no exact oracle.

    Returns:
      `protocol -> name -> returns[S × T, P]`: the trial protocol, and for a gradient learner the
      inner-steps one; rows meta-learned, random_init, pretrain and the fixed baselines.
    """
    sizes, tasks = test_sizes(config, num_seeds), family.test_tasks()
    learned = paired_returns(make_meta_learner(config, family), state, tasks, key, **sizes)
    pretrain = learner_returns(make_meta_learner(pretrain_config(config, family), family), pretrained, tasks, key,
                               **sizes)
    ceiling = learned_oracle(config, family, key, num_seeds=num_seeds, budget=oracle_budget)
    return _with_baselines(learned, pretrain, _fixed_rows(config, family, key, num_seeds=num_seeds, learned=ceiling),
                           pretrain_config(config, family).inner_steps)


def report_from_returns(config: MetaConfig, returns: dict[str, dict[str, np.ndarray]], num_tasks: int) -> dict:
    """The JSON-ready report of `protocol_returns`' arrays (pooled over training seeds, or not).

    Args:
      config: the meta-learner's config.
      returns: `protocol -> name -> [N, P]`, N = runs × T with the task minor.
      num_tasks: T, the held-out tasks.

    Returns:
      `{"family", "algo", "kind", "protocols"}` (see `metaq_jax.evaluate`).
    """
    report = {"family": config.family, "algo": config.algo, "kind": config.kind,
              "protocols": {protocol: section(protocol, rows[LEARNED].shape[1] - (protocol != "trial"), num_tasks)
                            for protocol, rows in returns.items()}}
    for protocol, rows in returns.items():
        add_rows(report, protocol, rows)
    return report


def protocol_report(config: MetaConfig, family: TaskFamily, state: MetaState, pretrained: MetaState,
                    key: jax.Array, *, num_seeds: int = 1,
                    oracle_budget: oracle.OracleBudget = oracle.OracleBudget()) -> dict:
    """The full meta-test of a meta-learned `state` beside every baseline; a JSON-ready dict.

    Args:
      config: the meta-learner's config, of any kind.
      family: its task family.
      state: the meta-learned state.
      pretrained: the pretraining baseline's state.
      key: consumed; every curve's.
      num_seeds: S, trials per test task.
      oracle_budget: the learned oracle's training, where the family has no exact oracle.

    Returns:
      `{"family", "algo", "kind", "protocols"}` (see `metaq_jax.evaluate`), each section with
      the rows meta-learned, random_init, pretrain and the fixed baselines.
    """
    returns = protocol_returns(config, family, state, pretrained, key, num_seeds=num_seeds,
                               oracle_budget=oracle_budget)
    return report_from_returns(config, returns, count_tasks(family.test_tasks()))


CURVE_POINTS = 10
"""How many windows a report's training curve averages the meta-steps over."""


def training_curve(history: list[Metrics], points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """The meta-steps cut into `points` windows: the mean return after adaptation in each.

    Args:
      history: every meta-step's host `Metrics`.
      points: windows (fewer when there are fewer steps).

    Returns:
      `{"step": last meta-step of each window (1-based), "post_return": its mean}`.
    """
    post = np.array([float(m.post_return) for m in history])
    windows = np.array_split(np.arange(len(post)), min(points, len(post)))
    return {"step": [int(w[-1]) + 1 for w in windows], "post_return": [round(float(post[w].mean()), 4) for w in windows]}


def pool_runs(runs: list[dict], once: Collection[str] = ()) -> dict:
    """Pool the returns of R training runs, counting a baseline that no run changes once.

    Args:
      runs: per training run, `{protocol: {row: returns [N, ...]}}` as `protocol_returns` gives.
      once: the rows no training touches (the exact and the learned oracle): one of them equal in
        every run is counted once. Any other row keeps every run, even runs that happen to be equal
        (a learner that never reaches a goal scores the same in every run, and each is a run).

    Returns:
      `{protocol: {row: returns}}`, each row the runs' arrays concatenated along the first axis.
    """
    pooled = {}
    for protocol, rows in runs[0].items():
        for name in rows:
            values = [run[protocol][name] for run in runs]
            if name in once and all(np.array_equal(values[0], other) for other in values[1:]):
                values = values[:1]
            pooled.setdefault(protocol, {})[name] = np.concatenate(values)
    return pooled


def _run(returns: dict, r: int) -> dict:
    """Run r's `protocol -> name -> [S × T, P]` from `member_returns`' `[R, S × T, P]` arrays."""
    return {protocol: {name: values[r] for name, values in rows.items()} for protocol, rows in returns.items()}


TRAINING, PLAN, HISTORY = "training", "protocol.json", "history.npz"
"""`<out>/training/` keeps a protocol's training while it runs, so a killed protocol resumes
(`metaq protocol --resume`): PLAN (its config and training seeds) and, per learner
(`meta/`, `pretrain/`), orbax `checkpoints/` of the population and HISTORY, every meta-step's
metrics up to the newest checkpoint and the training seconds spent. The command removes it
once the report is written."""
CHECKPOINT_EVERY = 100
"""Meta-steps between a protocol's checkpoints (one is also kept at the end)."""


def check_training(folder: str, config: MetaConfig, seeds: list[int], *, resume: bool) -> None:
    """Check that a protocol of `config` over `seeds` may train in `folder`; reads only.

    Args:
      folder: the protocol's training folder (`<out>/training`).
      config: the meta-learner's config.
      seeds: the training seeds.
      resume: whether the protocol continues an unfinished one there.

    Returns:
      Nothing: returning at all means the protocol may train in `folder`.

    Raises:
      InputError: without `resume`, the folder holds an unfinished protocol; with `resume`, it
        holds none, or one of another config (fields in `SCALE_FIELDS` may differ) or other seeds.
    """
    file = os.path.join(folder, PLAN)
    if not os.path.exists(file):
        if resume:
            raise InputError(f"--resume: {folder} holds no unfinished protocol; start it without --resume")
        return
    if not resume:
        raise InputError(f"{folder} holds an unfinished protocol; pass --resume to continue it, "
                         "or delete that folder to start again")
    with open(file) as f:
        stored = json.load(f)
    changed = runs.config_changes(MetaConfig.from_dict(stored["config"]), config)
    if stored["seeds"] != seeds:
        changed.append(f"training seeds {seeds}")
    if changed:
        raise InputError(f"--resume: {folder} holds a protocol of another config (differs in {', '.join(changed)}); "
                         "resume it with its own flags, or give another --out")


def _save_history(folder: str, history: list[Metrics], seconds: float) -> None:
    """HISTORY, atomically: `{field: [steps, P]}` of `history` and the training `seconds` so far."""
    arrays = {name: np.stack([np.asarray(getattr(m, name)) for m in history]) for name in Metrics._fields}
    with open(os.path.join(folder, HISTORY + ".tmp"), "wb") as f:
        np.savez(f, seconds=seconds, **arrays)
    os.replace(os.path.join(folder, HISTORY + ".tmp"), os.path.join(folder, HISTORY))


def _restore(folder: str, value: population.Population) -> tuple[population.Population, list[Metrics], float]:
    """`(population, history, seconds)` at the newest checkpoint in `folder`, or `value` and nothing
    where it has none. HISTORY is written before each checkpoint, so it holds at least its rows."""
    step = checkpoints.latest_step(os.path.join(folder, runs.CHECKPOINTS))
    if step is None:
        return value, [], 0.0
    restored = checkpoints.restore(os.path.join(folder, runs.CHECKPOINTS), step, value.states, value.run_keys)
    with np.load(os.path.join(folder, HISTORY)) as saved:
        history = [Metrics(*(saved[name][i] for name in Metrics._fields)) for i in range(step)]
        seconds = float(saved["seconds"])
    return value._replace(states=restored.state, run_keys=restored.run_key), history, seconds


def train_resumable(learner: population.PopulationLearner, num_steps: int, folder: str | None,
                    callback: Callable[[int, Metrics], None] | None = None, *,
                    checkpoint_every: int = CHECKPOINT_EVERY,
                    mesh: Mesh | None = None) -> tuple[population.Population, list[Metrics], float]:
    """`population.train_population`, checkpointed in `folder` and continued from its newest checkpoint.

    A resumed training computes what an unbroken one does: each step's key is the run key folded
    with the step (`training.step_key`), and the checkpoint holds the whole state and run key.

    Args:
      learner: from `population.make_population`.
      num_steps: meta-steps of each member.
      folder: where the checkpoints and HISTORY go (created); None: no checkpoints.
      callback: `callback(step, metrics)` after each step run here, metrics `[P]` on the host.
      checkpoint_every: meta-steps between checkpoints.
      mesh: the devices to train on, each member's tasks split along `task`; None: one device.

    Returns:
      `(population, history, seconds)`: the trained population (on the host), every step's
      `Metrics` `[P]`, and the training seconds (those of earlier runs included; not those of
      steps rerun).

    Raises:
      InputError: the tasks do not divide by the mesh (`run_protocol` checks a pooled learner's pool first).
    """
    value, history, seconds = (learner.init(), [], 0.0) if folder is None else _restore(folder, learner.init())
    if folder is None:
        mgr = checkpoints.NoCheckpoints()
    else:
        os.makedirs(folder, exist_ok=True)
        mgr = checkpoints.manager(os.path.join(folder, runs.CHECKPOINTS), keep_last=2)
    start = time.perf_counter()
    try:
        for step, value, metrics in population.population_steps(learner, value, len(history), num_steps, mesh):
            history.append(metrics)
            if folder is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == num_steps):
                _save_history(folder, history, seconds + time.perf_counter() - start)
                try:
                    checkpoints.save(mgr, value.states, value.run_keys)
                except NonFiniteError:  # a diverged member is part of the report; its run resumes from before
                    pass
            if callback is not None:
                callback(step, metrics)
    finally:
        mgr.wait_until_finished()
        mgr.close()
    # tested on one device, as a run alone is
    return jax.device_put(distributed.host_copy(value)), history, seconds + time.perf_counter() - start


def run_protocol(config: MetaConfig, *, num_seeds: int = 1, train_seeds: int = 1,
                 callback: Callable[[str, int, Metrics], None] | None = None, folder: str | None = None,
                 checkpoint_every: int = CHECKPOINT_EVERY) -> dict:
    """Meta-train `config` and its pretraining baseline with the same budget, then report.

    The R training seeds of each learner are one population (`metaq_jax.population`): one
    compiled update trains them all, one compiled program tests them all, and run r equals
    `metaq train --seed seed+r` to float32 rounding (bit for bit with one seed). Every row pools the trials of every run, so
    its interval covers the spread over training runs as well as over tasks; a row no run changes
    (the exact or the learned oracle) is counted once. Training runs on `config.devices` local
    devices (0: all of them), each member's tasks split along `task`; testing, on one.

    Args:
      config: the meta-learner's config; its family, budget and seed serve both trainings.
      num_seeds: S, trials per test task.
      train_seeds: R training runs, seeds `config.seed .. config.seed + R - 1`, run r evaluated
        with key `config.seed + r + 1`.
      callback: `callback(name, step, metrics)` after every step of each training, `name` being
        `"meta"` or `"pretrain"` and `metrics` the R runs' `[R]`.
      folder: the training folder (TRAINING): each learner checkpointed there every
        `checkpoint_every` meta-steps and continued from its newest checkpoint (`check_training`
        first); None: no checkpoints.
      checkpoint_every: meta-steps between checkpoints.

    Returns:
      `report_from_returns`' dict over R × S × T trials, with `training`: the seeds, each
      learner's training seconds (all R runs together), its environment steps per training
      run, its `training_curve` per run, and the devices it trained on.

    Raises:
      InputError: `config.family` names no family, or its tasks (or a pooled learner's pool) do not
        divide by the devices.
    """
    family = make_family(config.family)
    seeds = list(range(config.seed, config.seed + train_seeds))
    configs = {"meta": config, "pretrain": pretrain_config(config, family)}
    learners = {name: population.make_population(cfg, family, [{"seed": s} for s in seeds])
                for name, cfg in configs.items()}
    mesh = distributed.make_mesh(config.devices)
    for name, cfg in configs.items():
        distributed.check_learner(cfg, learners[name], mesh)
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        plan = {"config": config.to_dict(), "seeds": seeds}
        runs.write_atomic(os.path.join(folder, PLAN), json.dumps(plan, indent=1) + "\n")
    returns, seconds, curves = {}, {}, {}
    for name, cfg in configs.items():
        step_cb = None if callback is None else (lambda step, m, name=name: callback(name, step, m))
        trained, history, seconds[name] = train_resumable(
            learners[name], cfg.meta_steps, None if folder is None else os.path.join(folder, name), step_cb,
            checkpoint_every=checkpoint_every, mesh=mesh)
        returns[name] = population.member_returns(cfg, family, trained, seeds, random_init=name == "meta",
                                                  **test_sizes(config, num_seeds))
        curves[name] = [training_curve([jax.tree.map(lambda x, r=r: x[r], m) for m in history])
                        for r in range(train_seeds)]
    budget = oracle.OracleBudget()
    ceiling = learned_oracle(config, family, jax.random.key(seeds[0] + 1), num_seeds=num_seeds, budget=budget)
    per_run = []
    for r, seed in enumerate(seeds):
        fixed = _fixed_rows(config, family, jax.random.key(seed + 1), num_seeds=num_seeds, learned=ceiling)
        pretrain = {protocol: rows[LEARNED] for protocol, rows in _run(returns["pretrain"], r).items()}
        per_run.append(_with_baselines(_run(returns["meta"], r), pretrain, fixed, configs["pretrain"].inner_steps))
    report = report_from_returns(config, pool_runs(per_run, once=("oracle", "oracle_learned")),
                                 count_tasks(family.test_tasks()))
    report["training"] = {
        "seeds": seeds, "train_s": seconds, "curve": curves, "devices": mesh.size,
        "env_steps": {name: make_meta_learner(cfg, family).env_steps_per_update * cfg.meta_steps
                      for name, cfg in configs.items()}}
    if ceiling is not None:
        report["oracle_learned"] = oracle_summary(ceiling, budget)
    return report


SCORES = "protocol_scores.npz"
"""Where `save_report` keeps every row's scores `[R, T, P]`, as `"<protocol>/<row>"` arrays."""


def save_report(report: dict, folder: str) -> None:
    """Write a report as `protocol.json` (every statistic) and `SCORES` (every trial's return).

    The scores are the bulk of a report (a bandit cell's 1000 held-out tasks × runs × rows): kept
    in a compressed numpy file, not as JSON text, they take a tenth of the room.

    Args:
      report: a `run_protocol` report, its rows holding `scores`.
      folder: an existing folder.

    Returns:
      Nothing; writes both files into `folder`.
    """
    scores, stripped = {}, copy.deepcopy(report)
    for protocol, part in stripped["protocols"].items():
        for name, row in part["rows"].items():
            scores[f"{protocol}/{name}"] = np.asarray(row.pop("scores"), np.float32)
    with open(os.path.join(folder, "protocol.json"), "w") as f:
        json.dump(stripped, f, indent=1)
    np.savez_compressed(os.path.join(folder, SCORES), **scores)


def load_report(folder: str | os.PathLike) -> dict | None:
    """The `protocol.json` a protocol run wrote in `folder` (scores not loaded), or None where there is none.

    Args:
      folder: the run's `--out` folder.

    Returns:
      The report dict, or None.
    """
    path = os.path.join(folder, "protocol.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def interval_text(row: dict, point: int) -> str:
    """`"mean [lower, upper]"` of one row of a report at one point, the stratified-bootstrap 95% CI
    (reports written before it hold a normal interval: `"mean ± half-width"`).

    Args:
      row: a report's row (`{"mean", "mean_ci"}` or `{"mean", "ci95"}`).
      point: the point's index.

    Returns:
      The text, two decimals.
    """
    if "mean_ci" in row:
        lo, hi = row["mean_ci"][point]
        return f"{row['mean'][point]:.2f} [{lo:.2f}, {hi:.2f}]"
    return f"{row['mean'][point]:.2f} ± {row['ci95'][point]:.2f}"


def seeds_text(reports: dict[str, dict]) -> str:
    """How many training seeds a table's reports pooled: `"3 training seeds"`, or per learner
    where they differ (`"training seeds (maml 5, anil 3)"`).

    Args:
      reports: `{learner: report}`.

    Returns:
      The text.
    """
    counts = {name: len(report["training"]["seeds"]) for name, report in reports.items()}
    if len(distinct := set(counts.values())) == 1:
        return f"{distinct.pop()} training seeds"
    return "training seeds (" + ", ".join(f"{name} {count}" for name, count in counts.items()) + ")"


def markdown_table(report: dict) -> str:
    """The report as markdown: per protocol, one row per learner or baseline, one column per point.

    Args:
      report: a `protocol_report` (or `meta_test`) dict with `algo`.

    Returns:
      Per protocol, under a line saying which protocol it is, three tables (each with a trial's
      total in its last column): the mean with its bootstrap 95% interval, the interquartile mean
      with its interval, and each baseline's probability of being beaten by the meta-learned row;
      then the training's seeds, time and environment steps where the report has them.
    """
    blocks = []
    for protocol, part in report["protocols"].items():
        trial = protocol == "trial"
        header = [f"{part['x']} {p}" for p in part["points"]] + (["total"] if trial else [])
        label = {name: f"{LEARNED} ({report['algo']})" if name == LEARNED else name for name in part["rows"]}

        def table(title: str, cells: dict[str, list[str]]) -> str:
            return "\n".join([title, "", "| learner | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
                             + [f"| {label[name]} | " + " | ".join(row) + " |" for name, row in cells.items()])

        def interval(row: dict, stat: str) -> list[str]:
            pairs = list(zip(row[stat], row[f"{stat}_ci"]))
            if trial:  # a trial's total mean is stored as "total"
                pairs.append((row["total" if stat == "mean" else f"total_{stat}"], row[f"total_{stat}_ci"]))
            return [f"{value:.2f} [{lo:.2f}, {hi:.2f}]" for value, (lo, hi) in pairs]

        rows = part["rows"]
        blocks += [f"**{protocol}**: {PROTOCOL_NOTES[protocol]}",
                   table(f"Mean return [95% CI] over {len(rows[LEARNED]['scores'])} runs × {part['tasks']} "
                         "held-out tasks (stratified bootstrap over runs and tasks):",
                         {name: interval(row, "mean") for name, row in rows.items()}),
                   table("Interquartile mean [95% CI]:", {name: interval(row, "iqm") for name, row in rows.items()}),
                   table("P(meta-learned beats the row) [95% CI]:",
                         {name: interval(row["improvement"], "poi") for name, row in rows.items() if name != LEARNED})]
    if "training" in report:
        t = report["training"]
        on = f" on {t['devices']} device(s)" if "devices" in t else ""  # reports before this field: one device
        blocks.append(f"Training{on}: seeds {', '.join(map(str, t['seeds']))}; "
                      + "; ".join(f"{name} {t['train_s'][name]:.0f} s in all, {t['env_steps'][name]:,} env steps per run"
                                  for name in t["train_s"]) + ".")
        if "curve" in t:
            per_seed = t["curve"]["meta"]
            blocks.append("Return after adaptation while meta-training (mean over each window of meta-steps; one "
                          "list per seed): " + "; ".join(
                              ", ".join(f"{s} → {v:.2f}" for s, v in zip(c["step"], c["post_return"])) for c in per_seed)
                          + ".")
    return "\n\n".join(blocks)
