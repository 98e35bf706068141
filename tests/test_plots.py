"""The report's plots are drawn without pyplot: the process's matplotlib backend is untouched."""

import subprocess
import sys
import textwrap


def test_plots_leave_the_backend_and_pyplot_alone(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")  # a user's choice, e.g. a notebook's inline backend
        import numpy as np
        from metaq_jax.evaluate import add_rows, section
        from metaq_jax.plots import save_adaptation_plot, save_interval_plot
        rng = np.random.default_rng(0)
        report = {{"family": "nav2d", "algo": "maml", "protocols": {{
            "trial": section("trial", 2, num_tasks=4), "inner_steps": section("inner_steps", 1, num_tasks=4)}}}}
        for protocol in report["protocols"]:
            add_rows(report, protocol, {{"meta-learned": rng.normal(-20.0, 3.0, (12, 2)),
                                         "random_init": rng.normal(-80.0, 3.0, (12, 2))}})
        save_adaptation_plot(report, {str(tmp_path / "plot.png")!r})
        save_interval_plot(report, {str(tmp_path / "intervals.png")!r})
        assert "matplotlib.pyplot" not in sys.modules
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("plot.png", "intervals.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
