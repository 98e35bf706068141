"""Print the manifest of a regeneration as JSON: commit, machine, versions, each script's wall time.

Usage: python results/manifest.py TIMES, TIMES holding one `script seconds` line per table.
"""

import json
import subprocess
import sys

from metaq_jax.bench.suite import machine


def manifest(lines: list[str]) -> dict:
    """The manifest of the `script seconds` lines, with the commit and whether the tree was clean."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout)
    tables = [{"script": script, "wall_s": int(seconds)} for script, seconds in (line.split() for line in lines)]
    return {"commit": commit, "uncommitted_changes": dirty, "machine": machine(), "tables": tables}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(manifest(f.read().splitlines()), indent=1))
