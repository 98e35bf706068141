"""The `metaq` command: parse, validate, call the library, report. No training logic here."""

import sys
import time
from typing import Annotated

import tyro

from metaq_jax.config import MetaConfig

EVAL_STEPS = 3  # meta-test curves run to this many inner steps, or K if larger


def train(config: Annotated[MetaConfig, tyro.conf.arg(name="")]) -> None:
    """Meta-train a Q-network on a task family, then meta-test it on the held-out tasks."""
    import jax
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    import metaq_jax as mq

    family = mq.make_family(config.family)
    learner = mq.make_meta_learner(config, family)
    env_steps = 2 * config.num_tasks * config.num_envs * config.rollout_length  # support + query
    print(f"metaq train: {config.algo} on {config.family}, {config.num_tasks} tasks × "
          f"{config.num_envs} envs × {config.rollout_length} steps, K={config.inner_steps}, "
          f"device {jax.devices()[0].platform}")
    columns = [TextColumn("meta-step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    start = time.perf_counter()
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("train", total=config.meta_steps, info="compiling…")

        def report(step, m):
            rate = env_steps * (step + 1) / (time.perf_counter() - start)
            progress.update(bar, advance=1, info=(
                f"loss {float(m.meta_loss):.3f}  return {float(m.pre_return):.1f} → "
                f"{float(m.post_return):.1f}  {rate:,.0f} env steps/s"))

        state, history = mq.train(config, family, learner=learner, callback=report)
    wall = time.perf_counter() - start
    steps = max(EVAL_STEPS, config.inner_steps)
    report = mq.evaluate.meta_test(learner, state.params, family.test_tasks(), jax.random.key(config.seed + 1),
                                   num_steps=steps)
    first, last = history[0].post_return, history[-1].post_return
    print(f"done in {wall:.0f} s: adapted return in training {first:.1f} → {last:.1f}; "
          f"on {family.num_test_tasks} test tasks after 0..{steps} inner steps "
          f"{report['returns']} (random init {report['baselines']['random_init']})")


def families() -> None:
    """List the registered task families, one line each."""
    import metaq_jax as mq

    for name in mq.list_families():
        print(f"{name:12s} {mq.make_family(name).description}")


def main(argv: list[str] | None = None) -> None:
    try:
        tyro.extras.subcommand_cli_from_dict({"train": train, "families": families}, prog="metaq", args=argv)
    except ValueError as error:  # a user's bad value: one line, no traceback
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(2)
