"""The plot of a meta-test report: mean return ± 95% CI per point of each protocol, every row.

Drawn on a `matplotlib.figure.Figure` of its own: no pyplot, so no global backend is chosen
and a notebook's inline plots are left as they were.
"""

from matplotlib.figure import Figure

from metaq_jax.evaluate import LEARNED


def save_adaptation_plot(report: dict, file: str) -> None:
    """Draw a `meta_test` report, one panel per protocol (trial episodes, inner steps), and save it.

    Args:
      report: a `meta_test` report with `family`, `algo` and `protocols` (each section's rows
        `name -> {"mean", "ci95"}` over its points).
      file: the image to write (its format from the extension, e.g. `.png`).
    """
    parts = report["protocols"]
    fig = Figure(figsize=(5 * len(parts), 3.5), layout="tight")
    for ax, (protocol, part) in zip(fig.subplots(1, len(parts), squeeze=False)[0], parts.items()):
        for name, row in part["rows"].items():
            label = f"{LEARNED} ({report['algo']})" if name == LEARNED else name.replace("_", " ")
            ax.errorbar(part["points"], row["mean"], yerr=row["ci95"], marker="o", capsize=3, label=label)
        ax.set(xlabel=part["x"], ylabel="mean return", xticks=part["points"],
               title=f"{report['family']}: {protocol.replace('_', ' ')} on held-out tasks")
        ax.legend(fontsize="small")
    fig.savefig(file, dpi=100)
