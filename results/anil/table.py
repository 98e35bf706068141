"""Print the README's comparison of ANIL with MAML: the same protocol, the same family and budget,
only the adapted layers differ.

Reads results/anil/<family>/protocol.json (written by regenerate.sh), MAML's stored run of the same
family, and results/anil/timing.json (one meta-step of each, from timing.py).

Usage: python results/anil/table.py
"""

import json
import pathlib

import numpy as np

from metaq_jax import stats
from metaq_jax.protocol import interval_text as interval, load_report as load, seeds_text

HERE = pathlib.Path(__file__).parent
MAML = {"cartpole": HERE.parent / "families" / "cartpole", "nav2d": HERE.parent / "nav2d"}
BASELINES = ("random_init", "oracle", "oracle_learned")


def scores(folder, protocol):
    """`[runs, tasks, points]` scores of the meta-learned row of one protocol."""
    return np.load(folder / "protocol_scores.npz")[f"{protocol}/meta-learned"]


def beats(family, protocol):
    """"ANIL beats MAML" at each point of `protocol`: the probability of improvement [95% CI]."""
    poi = stats.improvement(scores(HERE / family, protocol), scores(MAML[family], protocol))
    return ", ".join(f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, (lo, hi) in zip(poi["poi"], poi["poi_ci"]))


def total(trial):
    """A trial row's total as a one-point row, for `interval`."""
    if "total_mean_ci" in trial:
        return {"mean": [trial["total"]], "mean_ci": [trial["total_mean_ci"]]}
    return {"mean": [trial["total"]], "ci95": [trial["total_ci95"]]}


def step_ms(family, algo):
    """The median meta-step of `timing.py` (one training seed), in ms; "–" where not timed."""
    path = HERE / "timing.json"
    row = (json.loads(path.read_text())["learners"] if path.exists() else {}).get(f"{family} {algo}")
    return "–" if row is None else f"{1000 * row['step_s']['median']:.0f}"


def table(family):
    reports = {"maml": load(MAML[family]), "anil": load(HERE / family)}
    inner = reports["maml"]["protocols"]["inner_steps"]
    k = len(inner["rows"]["meta-learned"]["mean"]) - 1
    lines = [f"**{family}** (held-out tasks; mean [95% CI] over {seeds_text(reports)} × tasks; the return after "
             f"0..{k} inner steps, and the total of a {reports['maml']['config']['trial_episodes']}-episode trial)", "",
             "| learner | " + " | ".join(f"{s} inner steps" for s in range(k + 1)) + " | trial total | ms per meta-step |",
             "|---|" + "---|" * (k + 3)]
    rows = [(algo, report, "meta-learned") for algo, report in reports.items()]
    rows += [("pretrain, every layer fine-tuned", reports["maml"], "pretrain"),
             ("pretrain, the head fine-tuned", reports["anil"], "pretrain")]
    rows += [(name, reports["maml"], name) for name in BASELINES if name in inner["rows"]]
    for label, report, row in rows:
        steps, trial = report["protocols"]["inner_steps"]["rows"][row], report["protocols"]["trial"]["rows"][row]
        lines.append(f"| {label} | " + " | ".join(interval(steps, s) for s in range(k + 1)) +
                     f" | {interval(total(trial), 0)} | {step_ms(family, label) if label in reports else '–'} |")
    if (MAML[family] / "protocol_scores.npz").exists():
        lines += ["", f"P(ANIL beats MAML) after 0..{k} inner steps: {beats(family, 'inner_steps')}; in each episode "
                      f"of the trial: {beats(family, 'trial')}."]
    else:
        lines += ["", "MAML's report here predates stored per-task scores, so there is no probability of improvement."]
    return "\n".join(lines)


def main():
    print("\n\n".join(table(family) for family in MAML if load(HERE / family) is not None))


if __name__ == "__main__":
    main()
