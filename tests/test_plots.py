"""The adaptation plot is drawn without pyplot: the process's matplotlib backend is untouched."""

import subprocess
import sys
import textwrap


def test_plot_leaves_the_backend_and_pyplot_alone(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")  # a user's choice, e.g. a notebook's inline backend
        from metaq_jax.plots import save_adaptation_plot
        rows = {{"meta-learned": {{"mean": [-40.0, -20.0], "ci95": [1.0, 2.0]}},
                 "random_init": {{"mean": [-90.0, -80.0], "ci95": [3.0, 3.0]}}}}
        report = {{"family": "nav2d", "algo": "maml", "protocols": {{
            "trial": {{"x": "episode", "points": [1, 2], "rows": rows}},
            "inner_steps": {{"x": "inner steps", "points": [0, 1], "rows": rows}}}}}}
        save_adaptation_plot(report, {str(tmp_path / "plot.png")!r})
        assert "matplotlib.pyplot" not in sys.modules
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
