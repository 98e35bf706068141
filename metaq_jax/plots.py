"""The plots of a meta-test report: the mean return and its bootstrap 95% CI at each point of each
protocol, every row; and the same report in rliable's style (aggregate intervals, performance
profiles).

Drawn on a `matplotlib.figure.Figure` of its own: no pyplot, so no global backend is chosen
and a notebook's inline plots are left as they were.
"""

import numpy as np
from matplotlib.figure import Figure

from metaq_jax import stats
from metaq_jax.evaluate import LEARNED


def save_adaptation_plot(report: dict, file: str) -> None:
    """Draw a `meta_test` report, one panel per protocol (trial episodes, inner steps, support batches), and save it.

    Args:
      report: a `meta_test` report with `family`, `algo` and `protocols` (each section's rows
        `name -> {"mean", "mean_ci"}` over its points).
      file: the image to write (its format from the extension, e.g. `.png`).

    Returns:
      Nothing; writes the image to `file`.
    """
    parts = report["protocols"]
    fig = Figure(figsize=(5 * len(parts), 3.5), layout="tight")
    for ax, (protocol, part) in zip(fig.subplots(1, len(parts), squeeze=False)[0], parts.items()):
        for name, row in part["rows"].items():
            mean, ci = np.asarray(row["mean"]), np.asarray(row["mean_ci"])
            ax.errorbar(part["points"], mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], marker="o", capsize=3,
                        label=_label(report, name))
        ax.set(xlabel=part["x"], ylabel="mean return", xticks=part["points"],
               title=f"{report['family']}: {protocol.replace('_', ' ')} on held-out tasks")
        ax.legend(fontsize="small")
    fig.savefig(file, dpi=100)


def final_scores(part: dict, row: dict) -> tuple[str, np.ndarray, dict]:
    """What a section's interval plot shows of a row: the trial's total, or its last point (inner step, support batch).

    Args:
      part: one protocol's section of a report (its `x` and `points`).
      row: one of its rows, with `scores` `[R, T, P]` and its estimates.

    Returns:
      `(what, scores [R, T], {"mean", "iqm": value, "mean_ci", "iqm_ci": [lower, upper]})`.
    """
    scores = np.asarray(row["scores"])
    if "total" in row:
        return "trial total", scores.sum(axis=-1), {"mean": row["total"], "iqm": row["total_iqm"],
                                                    "mean_ci": row["total_mean_ci"], "iqm_ci": row["total_iqm_ci"]}
    return (f"{part['x']} {part['points'][-1]}", scores[..., -1],
            {stat: row[stat][-1] for stat in ("mean", "iqm", "mean_ci", "iqm_ci")})


def save_interval_plot(report: dict, file: str) -> None:
    """Draw a report in rliable's style and save it: per protocol, the mean and IQM with their
    bootstrap 95% intervals, and the performance profile (fraction of runs × tasks above each
    return τ, with its band), at the trial's total or the last point of the other protocols.

    Args:
      report: a `meta_test` or protocol report with `family`, `algo` and rows holding `scores`.
      file: the image to write (its format from the extension, e.g. `.png`).

    Returns:
      Nothing; writes the image to `file`.
    """
    parts = report["protocols"]
    fig = Figure(figsize=(14, 3.5 * len(parts)), layout="tight")
    axes = fig.subplots(len(parts), 3, squeeze=False)
    for (mean_ax, iqm_ax, profile_ax), (protocol, part) in zip(axes, parts.items()):
        shown = {name: final_scores(part, row) for name, row in part["rows"].items()}
        taus = stats.profile_thresholds([scores for _, scores, _ in shown.values()])
        names = list(shown)
        for i, (name, (what, scores, estimate)) in enumerate(shown.items()):
            color = f"C{i}"
            for ax, stat in ((mean_ax, "mean"), (iqm_ax, "iqm")):
                lo, hi = estimate[f"{stat}_ci"]
                ax.barh(i, hi - lo, left=lo, height=0.6, color=color, alpha=0.75)
                ax.vlines(estimate[stat], i - 0.3, i + 0.3, color="black")
            profile = stats.performance_profile(scores, taus)
            band = np.asarray(profile["fraction_ci"])
            profile_ax.plot(taus, profile["fraction"], color=color, label=_label(report, name))
            profile_ax.fill_between(taus, band[:, 0], band[:, 1], color=color, alpha=0.2)
        for ax, stat in ((mean_ax, "mean"), (iqm_ax, "IQM")):
            ax.set(yticks=range(len(names)), yticklabels=[_label(report, n) for n in names],
                   xlabel=f"{stat} return, {what} (95% CI)", title=f"{report['family']}: {protocol.replace('_', ' ')}")
            ax.invert_yaxis()
        iqm_ax.set(yticklabels=[])
        profile_ax.set(xlabel=f"return τ ({what})", ylabel="fraction of runs × tasks > τ", ylim=(0, 1.02),
                       title="performance profile")
        profile_ax.legend(fontsize="small")
    fig.savefig(file, dpi=100)


def _label(report: dict, name: str) -> str:
    return f"{LEARNED} ({report['algo']})" if name == LEARNED else name.replace("_", " ")
