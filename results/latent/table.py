"""Print the README's comparison of the latent-context learners with maml, and plot the return in
episode 2 of a trial against the environment steps each learner used in meta-training.

Reads results/latent/<family>-<algo>/protocol.json (written by regenerate.sh) and the stored maml
runs of the same families; writes results/latent/sample_efficiency.png.

Usage: python results/latent/table.py
"""

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import NullFormatter  # noqa: E402

from metaq_jax import make_family  # noqa: E402
from metaq_jax.protocol import MEMORY_PRETRAIN_FINE_TUNING  # noqa: E402
from metaq_jax.protocol import interval_text as interval, load_report as load, seeds_text  # noqa: E402

HERE = pathlib.Path(__file__).parent
MAML = {"nav2d": HERE.parent / "nav2d", **{family: HERE.parent / "families" / family
                                           for family in ("pointrobot", "cartpole", "pendulum")}}
LATENT = ("pearl", "mql")
CEILINGS = ("oracle", "oracle_learned")


def bounds(row, point):
    if "mean_ci" in row:
        return tuple(row["mean_ci"][point])
    return row["mean"][point] - row["ci95"][point], row["mean"][point] + row["ci95"][point]


def step_ms(family, label):
    """The median meta-step of `timing.py` (one training seed), in ms; "–" where not timed."""
    path = HERE / "timing.json"
    timed = json.loads(path.read_text())["learners"] if path.exists() else {}
    row = timed.get(f"{family} {label}")
    return "–" if row is None else f"{1000 * row['step_s']['median']:.0f}"


def entries(family):
    """`(label, report, row name, env-steps key)` for each learner that has a report."""
    maml = load(MAML[family])
    latent = {algo: load(HERE / f"{family}-{algo}") for algo in LATENT}
    latent = {algo: report for algo, report in latent.items() if report is not None}
    out = [("maml", maml, "meta-learned", "meta")] if maml is not None else []
    out += [(algo, report, "meta-learned", "meta") for algo, report in latent.items()]
    if maml is not None:
        out.append(("pretrain (maml's budget)", maml, "pretrain", "pretrain"))
    if latent:  # pearl's and mql's pretraining baselines are the same run
        out.append(("pretrain (latent budget)", next(iter(latent.values())), "pretrain", "pretrain"))
    return out


def table(family):
    rows = entries(family)
    learners = {label: report for label, report, row, _ in rows if row == "meta-learned"}
    lines = [f"**{family}** (held-out tasks; mean [95% CI] over {seeds_text(learners)} × tasks)", "",
             "| learner | episode 1 | episode 2 | meta-training env steps per run | ms per meta-step |",
             "|---|---|---|---|---|"]
    for label, report, row, name in rows:
        trial = report["protocols"]["trial"]["rows"][row]
        steps = report["training"]["env_steps"][name]
        lines.append(f"| {label} | {interval(trial, 0)} | {interval(trial, 1)} | {steps:,} | {step_ms(family, label)} |")
    if rows:
        trial = rows[0][1]["protocols"]["trial"]["rows"]
        for ceiling in CEILINGS:
            if ceiling in trial:
                lines.append(f"| {ceiling} | {interval(trial[ceiling], 0)} | {interval(trial[ceiling], 1)} | – | – |")
        maml = next((report for label, report, _, _ in rows if label == "maml"), None)
        if maml is not None:
            inner = maml["protocols"]["inner_steps"]["rows"]["meta-learned"]
            k = len(inner["mean"]) - 1
            lines += ["", f"maml on its own protocol, {k} inner steps on a support batch of "
                          f"{maml['config']['num_envs']} × {maml['config']['rollout_length']} test-task steps: "
                          f"{interval(inner, k)}."]
        lines += support_lines(rows, make_family(family).episode_length)
        lines += discount_line(rows)
    return "\n".join(lines)


def discount_line(rows):
    """Each learner's γ, where they differ: the runs compared did not all learn the same objective."""
    gammas = {label: report["config"]["gamma"] for label, report, _, _ in rows}
    if len(set(gammas.values())) == 1:
        return []
    return ["", "Discount γ of each run's TD target: " + ", ".join(f"{label} {g:g}" for label, g in gammas.items()) + "."]


def support_lines(rows, horizon):
    """Each latent learner under MAML's protocol as it has it: before and after one support batch of
    an episode (`horizon` steps) in each environment."""
    lines = []
    for label, report, row, _ in rows:
        support = report["protocols"].get("support")
        if support is None:
            continue
        r, envs = support["rows"][row], report["config"]["num_envs"]
        if label in LATENT:
            what = f"on its form of MAML's protocol, one support batch of {envs} × {horizon} test-task steps"
        else:  # the latent learners' pretraining baseline, fine-tuned on a support batch as long as a trial
            episodes = report["config"]["trial_episodes"]
            steps = MEMORY_PRETRAIN_FINE_TUNING["inner_steps"]
            what = (f"{'one fine-tuning step' if steps == 1 else f'{steps} fine-tuning steps'} on its own support "
                    f"batch of {envs} × {episodes * horizon} test-task steps")
        lines.append(f"- {label}, {what}: {interval(r, 0)} before, {interval(r, 1)} after.")
    return [""] + lines if lines else []


def plot(families, path):
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4), squeeze=False)
    for ax, family in zip(axes[0], families):
        rows = entries(family)
        for label, report, row, name in rows:
            trial = report["protocols"]["trial"]["rows"][row]
            lo, hi = bounds(trial, 1)
            mean = trial["mean"][1]
            ax.errorbar(report["training"]["env_steps"][name], mean, yerr=[[mean - lo], [hi - mean]],
                        fmt="o", capsize=4, label=label)
        if rows:
            trial = rows[0][1]["protocols"]["trial"]["rows"]
            for ceiling in CEILINGS:
                if ceiling in trial:
                    ax.axhline(trial[ceiling]["mean"][1], color="grey", linestyle="--", label=ceiling)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks collide within a decade
        ax.set_xlabel("meta-training env steps per run")
        ax.set_ylabel("return in episode 2 of a trial")
        ax.set_title(family)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    families = [family for family in MAML if any(load(HERE / f"{family}-{algo}") for algo in LATENT)]
    print("\n\n".join(table(family) for family in families))
    plot(families, HERE / "sample_efficiency.png")


if __name__ == "__main__":
    main()
