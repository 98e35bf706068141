"""The adaptation plot of a run: return vs. inner steps on held-out tasks, against baselines."""

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed, or present, on a training machine

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def save_adaptation_plot(report: dict, file: str) -> None:
    """Draw a `meta_test` report (with `family`, `algo`) as mean return ± 95% CI per inner step."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = report["inner_steps"]
    curves = {f"meta-learned ({report['algo']})": (report["returns"], report["ci95"])}
    curves.update({name.replace("_", " "): (report["baselines"][name], report["baselines_ci95"][name])
                   for name in report["baselines"]})
    for label, (mean, ci) in curves.items():
        ax.errorbar(steps, mean, yerr=ci, marker="o", capsize=3, label=label)
    ax.set(xlabel="inner steps", ylabel="mean return", xticks=steps,
           title=f"{report['family']}: adaptation on held-out tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(file, dpi=100)
    plt.close(fig)
