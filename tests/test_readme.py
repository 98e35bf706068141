"""The README's quickstart runs as written."""

import pathlib
import re


def test_quickstart_runs():
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    quickstart = re.search(r"## Quickstart\n\n```python\n(.*?)```", readme, re.S).group(1)
    namespace = {}
    exec(compile(quickstart, "README quickstart", "exec"), namespace)
    assert namespace["curve"].mean.shape == (4,)
    assert namespace["w"].shape == (3,)
