"""The `metaq` command: a tiny train run, the family listing, a bad value refused."""

import subprocess
import sys


from metaq_jax import cli


def test_families_lists_one_line_each(capsys):
    cli.main(["families"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["bandit", "cartpole", "nav2d"]


def test_bad_value_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "metaq_jax", "train", "--inner-steps", "-1"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "metaq: error: MetaConfig.inner_steps = -1: must be an integer >= 0"


def test_train_tiny(capsys):
    cli.main(["train", "--family", "bandit", "--num-tasks", "2", "--num-envs", "2",
              "--rollout-length", "10", "--meta-steps", "3", "--hidden-sizes", "8"])
    out = capsys.readouterr().out
    assert "metaq train: maml on bandit" in out and "done in" in out
