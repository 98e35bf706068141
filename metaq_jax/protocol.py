"""The meta-test protocol: a meta-learned start against honest baselines on held-out tasks.

Baselines, each under the same inner-step budget on the same test tasks and keys:
  random_init   a fresh initialisation, then the same K inner steps;
  pretrain      multi-task Q-learning on the same training tasks for the same number of
                environment steps (`algo="pretrain"`), then the same K inner steps;
  oracle        the family's exact optimal return, where it has one (a ceiling);
  oracle_learned  elsewhere, a Q-learner trained on each test task alone (`metaq_jax.oracle`);
  ucb1, thompson, random_play   classic strategies, on Bernoulli bandit families.
"""

from typing import Callable

import jax
import numpy as np

from metaq_jax import baselines, oracle
from metaq_jax.algos import make_meta_learner, make_problem
from metaq_jax.config import MetaConfig
from metaq_jax.evaluate import adaptation_curve, as_list, meta_test, summarize
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.registry import make_family
from metaq_jax.training import train
from metaq_jax.types import EnvParams, Metrics, Params

MIN_EVAL_STEPS = 3
"""The fewest inner steps a report's curves run to, whatever `config.inner_steps` is."""


def pretrain_config(config: MetaConfig) -> MetaConfig:
    """The pretraining baseline's config: the same budget and inner loop, no meta-objective.

    Args:
      config: the meta-learner's config.

    Returns:
      `config` with `algo="pretrain"` and Meta-SGD and step losses off.
    """
    return config.replace(algo="pretrain", meta_sgd=False, step_losses=False)


def _constant(per_trial: jax.Array, num_steps: int) -> tuple[list, list]:
    """A baseline that does not adapt: its mean and CI at every step count."""
    curve = summarize(np.repeat(np.asarray(per_trial).reshape(-1, 1), num_steps + 1, axis=1))
    return as_list(curve.mean), as_list(curve.ci95)


def fixed_baselines(family: TaskFamily, tasks: EnvParams, key: jax.Array, *, num_steps: int,
                    num_seeds: int) -> dict[str, tuple[list, list]]:
    """Baselines that do not depend on learned parameters: oracle, bandit strategies.

    Args:
      family: gives `oracle_return` (the `oracle` baseline, where not None) and the env (the
        bandit strategies, on `BernoulliBandit` only: they assume 0/1 rewards).
      tasks: task parameters with a leading `[T]` axis.
      key: consumed by the bandit strategies; split per (seed, task).
      num_steps: K; each curve is constant over 0..K inner steps.
      num_seeds: S, trials per task of the bandit strategies.

    Returns:
      `name -> (mean, ci95)`, each a list over 0..K inner steps.
    """
    from metaq_jax.tasks.bandit import BernoulliBandit  # not at import: gymnax starts JAX's backend

    out = {}
    if family.oracle_return is not None:
        out["oracle"] = _constant(jax.vmap(family.oracle_return)(tasks), num_steps)
    if type(family.env) is BernoulliBandit:  # not its Gaussian subclass: these assume 0/1 rewards
        num_tasks = tasks.arm_means.shape[0]
        num_pulls = int(np.asarray(tasks.max_steps_in_episode)[0])
        keys = jax.random.split(key, (num_seeds, num_tasks))
        for name, policy in baselines.BANDIT_POLICIES.items():
            play = jax.vmap(jax.vmap(lambda k, means: baselines.play(policy, k, means, num_pulls)),
                            in_axes=(0, None))
            out[name] = _constant(jax.jit(play)(keys, tasks.arm_means), num_steps)
    return out


def protocol_report(config: MetaConfig, family: TaskFamily, params: Params, pretrained: Params,
                    key: jax.Array, *, num_seeds: int = 1,
                    oracle_budget: oracle.OracleBudget = oracle.OracleBudget()) -> dict:
    """The full meta-test of meta-learned `params` beside every baseline; a JSON-ready dict.

    K is `max(MIN_EVAL_STEPS, config.inner_steps)`; every curve is on `family.test_tasks()`
    with the same key.

    Args:
      config: the meta-learner's config.
      family: the task family `config.family` names.
      params: the meta-learned parameters.
      pretrained: the pretraining baseline's parameters (`pretrain_config(config)`).
      key: consumed; shared by every curve, so they are paired.
      num_seeds: S, trials per test task.
      oracle_budget: the learned oracle's training, for families with no exact oracle.

    Returns:
      A JSON-ready dict with keys family, algo, inner_steps (0..K), returns, ci95, baselines
      and baselines_ci95 (name -> list over inner steps).
    """
    num_steps = max(MIN_EVAL_STEPS, config.inner_steps)
    tasks = family.test_tasks()
    learner = make_meta_learner(config, family)
    report = {"family": config.family, "algo": config.algo,
              **meta_test(learner, params, tasks, key, num_steps=num_steps, num_seeds=num_seeds)}
    pre_learner = make_meta_learner(pretrain_config(config), family)
    pre = adaptation_curve(pre_learner, pretrained, tasks, key, num_steps=num_steps, num_seeds=num_seeds)
    named = {"pretrain": (as_list(pre.mean), as_list(pre.ci95)),
             **fixed_baselines(family, tasks, key, num_steps=num_steps, num_seeds=num_seeds)}
    if family.oracle_return is None:
        problem = make_problem(pretrain_config(config), family)
        returns = oracle.learned_oracle_returns(problem, problem.init_params(key), tasks, key, num_seeds=num_seeds,
                                                budget=oracle_budget)
        named["oracle_learned"] = _constant(returns, num_steps)
    return add_baselines(report, named)


def add_baselines(report: dict, named: dict[str, tuple[list, list]]) -> dict:
    """`report` with each `name -> (mean, ci95)` added to its `baselines` / `baselines_ci95`.

    Args:
      report: a `meta_test` report; changed in place.
      named: `name -> (mean, ci95)`, lists over the report's inner steps.

    Returns:
      `report` itself.
    """
    for name, (mean, ci95) in named.items():
        report["baselines"][name] = mean
        report["baselines_ci95"][name] = ci95
    return report


def run_protocol(config: MetaConfig, *, num_seeds: int = 1,
                 callback: Callable[[str, int, Metrics], None] | None = None) -> dict:
    """Meta-train `config` and its pretraining baseline with the same budget, then report.

    Args:
      config: the meta-learner's config; its family, budget and seed serve both trainings.
      num_seeds: S, trials per test task.
      callback: `callback(name, step, metrics)` sees every step of both trainings, `name`
        being `"meta"` or `"pretrain"`.

    Returns:
      `protocol_report`'s dict, evaluated with key `config.seed + 1`.

    Raises:
      InputError: `config.family` names no family.
    """
    family = make_family(config.family)
    states = {}
    for name, cfg in (("meta", config), ("pretrain", pretrain_config(config))):
        step_cb = None if callback is None else (lambda step, m, name=name: callback(name, step, m))
        states[name], _ = train(cfg, family, callback=step_cb)
    return protocol_report(config, family, states["meta"].params, states["pretrain"].params,
                           jax.random.key(config.seed + 1), num_seeds=num_seeds)


def markdown_table(report: dict) -> str:
    """The report as a markdown table: one row per curve, one column per number of inner steps.

    Args:
      report: a `protocol_report` (or `meta_test`) dict.

    Returns:
      The table, cells `mean ± ci95`, the meta-learned row first.
    """
    steps = report["inner_steps"]
    rows = {f"meta-learned ({report['algo']})": (report["returns"], report["ci95"])}
    rows.update({name: (report["baselines"][name], report["baselines_ci95"][name])
                 for name in report["baselines"]})
    lines = ["| start | " + " | ".join(f"{k} steps" for k in steps) + " |",
             "|---|" + "---|" * len(steps)]
    for name, (mean, ci95) in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in zip(mean, ci95)) + " |")
    return "\n".join(lines)
