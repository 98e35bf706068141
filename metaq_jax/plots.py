"""The adaptation plot of a run: return vs. inner steps on held-out tasks, against baselines.

Drawn on a `matplotlib.figure.Figure` of its own: no pyplot, so no global backend is chosen
and a notebook's inline plots are left as they were.
"""

from matplotlib.figure import Figure


def save_adaptation_plot(report: dict, file: str) -> None:
    """Draw a `meta_test` report as mean return ± 95% CI per inner step, and save it.

    Args:
      report: a `meta_test` report with `family` and `algo`, and optionally `baselines` and
        `baselines_ci95` (name -> a list per inner step).
      file: the image to write (its format from the extension, e.g. `.png`).
    """
    fig = Figure(figsize=(5, 3.5), layout="tight")
    ax = fig.add_subplot()
    steps = report["inner_steps"]
    curves = {f"meta-learned ({report['algo']})": (report["returns"], report["ci95"])}
    curves.update({name.replace("_", " "): (report["baselines"][name], report["baselines_ci95"][name])
                   for name in report.get("baselines", {})})
    for label, (mean, ci) in curves.items():
        ax.errorbar(steps, mean, yerr=ci, marker="o", capsize=3, label=label)
    ax.set(xlabel="inner steps", ylabel="mean return", xticks=steps,
           title=f"{report['family']}: adaptation on held-out tasks")
    ax.legend()
    fig.savefig(file, dpi=100)
