"""Which library made each output of results/*/regenerate.sh, and which outputs it would make anew.

`results/provenance.json` maps each output (a folder or file under results/) to the command that
made it, the library it ran on (git's hashes of metaq_jax/ and pyproject.toml: the code and the
pinned versions), the commit, the machine and the wall time. An output is *current* when its
recorded command is the script's and its library is the checkout's; `results/produce.sh` reruns
only the others, so a regeneration longer than one sitting can be continued.

Usage (from the repository root):
  python results/manifest.py current OUT -- CMD...          exit 0 when OUT is current for CMD
  python results/manifest.py record OUT SECONDS -- CMD...   OUT was just made by CMD
  python results/manifest.py                                 the manifest (JSON) of every output
"""

import json
import pathlib
import subprocess
import sys

LIBRARY = ("metaq_jax", "pyproject.toml")
PROVENANCE = pathlib.Path("results/provenance.json")
# where the outputs lie: a protocol's or a sweep's folder, or a file of numbers
OUTPUT_FILES = {"**/protocol.json": "folder", "**/sweep.json": "folder", "default/*.txt": "file",
                "*/timing.json": "file"}


def _git(root: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def library(root: pathlib.Path) -> dict[str, str] | None:
    """git's hashes of `LIBRARY` at HEAD, or None when any of it has uncommitted changes."""
    if _git(root, "status", "--porcelain", "--", *LIBRARY):
        return None
    return {path: _git(root, "rev-parse", f"HEAD:{path}") for path in LIBRARY}


def load(root: pathlib.Path) -> dict[str, dict]:
    """The recorded provenance, `{output: record}` (empty before the first record)."""
    path = root / PROVENANCE
    return json.loads(path.read_text()) if path.exists() else {}


def is_current(record: dict | None, command: list[str], lib: dict[str, str] | None) -> bool:
    """Whether `record` says `command` made the output on library `lib` (never for an uncommitted one)."""
    return record is not None and lib is not None and record["command"] == command and record["library"] == lib


def record(root: pathlib.Path, out: str, seconds: int, command: list[str], machine: dict) -> dict:
    """Write `out`'s provenance into results/provenance.json (atomically) and return it."""
    provenance = load(root)
    provenance[out] = {"command": command, "library": library(root), "commit": _git(root, "rev-parse", "HEAD"),
                       "wall_s": seconds, "machine": machine}
    tmp = (root / PROVENANCE).with_suffix(".tmp")
    tmp.write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / PROVENANCE)
    return provenance[out]


def outputs(root: pathlib.Path) -> list[str]:
    """Every output now under results/, as a path from the repository root."""
    results = root / "results"
    found = set()
    for pattern, kind in OUTPUT_FILES.items():
        for path in results.glob(pattern):
            found.add((path.parent if kind == "folder" else path).relative_to(root).as_posix())
    return sorted(found)


def manifest(root: pathlib.Path) -> dict:
    """The checkout (commit, library) and every output: its record and whether it is current.

    An output with no record is listed under `unrecorded`; one whose library is not the checkout's
    under `stale`.
    """
    provenance, lib, found = load(root), library(root), outputs(root)
    listed = {out: {**provenance[out], "current": lib is not None and provenance[out]["library"] == lib}
              for out in found if out in provenance}
    return {"commit": _git(root, "rev-parse", "HEAD"), "library": lib, "outputs": listed,
            "stale": [out for out, entry in listed.items() if not entry["current"]],
            "unrecorded": [out for out in found if out not in provenance]}


def main(argv: list[str]) -> int:
    root = pathlib.Path.cwd()
    if not argv:
        print(json.dumps(manifest(root), indent=1))
        return 0
    split = argv.index("--")
    (verb, out, *rest), command = argv[:split], argv[split + 1:]
    if verb == "current":
        return 0 if is_current(load(root).get(out), command, library(root)) else 1
    from metaq_jax.bench.suite import machine  # imports jax: only where a record needs it
    record(root, out, int(rest[0]), command, machine())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
