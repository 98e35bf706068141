"""results/manifest.py and results/produce.sh: an output is rerun unless its command and library are today's."""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

RESULTS = pathlib.Path(__file__).parents[1] / "results"
spec = importlib.util.spec_from_file_location("results_manifest", RESULTS / "manifest.py")
manifest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(manifest)

COMMAND = ["metaq", "protocol", "--out", "results/a"]


def git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A repository with a library (metaq_jax/, pyproject.toml) committed, and the two results scripts."""
    (tmp_path / "metaq_jax").mkdir()
    (tmp_path / "metaq_jax" / "core.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "results").mkdir()
    for script in ("manifest.py", "produce.sh"):
        shutil.copy(RESULTS / script, tmp_path / "results" / script)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "library")
    return tmp_path


def test_a_record_is_current_for_its_command_and_library_only(repo):
    made = manifest.record(repo, "results/a", 5, COMMAND, {"cpus": 2})
    assert made["wall_s"] == 5 and made["library"] == manifest.library(repo)
    stored = manifest.load(repo)["results/a"]
    assert manifest.is_current(stored, COMMAND, manifest.library(repo))
    assert not manifest.is_current(stored, COMMAND + ["--seed", "1"], manifest.library(repo))
    assert not manifest.is_current(manifest.load(repo).get("results/b"), COMMAND, manifest.library(repo))


def test_a_library_change_makes_outputs_stale_committed_or_not(repo):
    manifest.record(repo, "results/a", 5, COMMAND, {})
    before = manifest.library(repo)
    (repo / "metaq_jax" / "core.py").write_text("x = 2\n")
    assert manifest.library(repo) is None  # uncommitted: nothing counts as current
    assert not manifest.is_current(manifest.load(repo)["results/a"], COMMAND, None)
    git(repo, "commit", "-qam", "change")
    assert manifest.library(repo) not in (None, before)
    assert not manifest.is_current(manifest.load(repo)["results/a"], COMMAND, manifest.library(repo))


def test_results_only_commits_keep_outputs_current(repo):
    manifest.record(repo, "results/a", 5, COMMAND, {})
    (repo / "README.md").write_text("a table\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "results")
    assert manifest.is_current(manifest.load(repo)["results/a"], COMMAND, manifest.library(repo))


def test_manifest_lists_every_output_current_stale_or_unrecorded(repo):
    for path in ("a/protocol.json", "n/protocol.json", "n/sweep/sweep.json", "default/tuned.txt",
                 "x/timing.json", "x/notes.md"):
        (repo / "results" / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / "results" / path).write_text("{}")
    assert manifest.outputs(repo) == ["results/a", "results/default/tuned.txt", "results/n",
                                      "results/n/sweep", "results/x/timing.json"]
    manifest.record(repo, "results/a", 5, COMMAND, {})
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a")
    manifest.record(repo, "results/n", 7, ["other"], {})
    (repo / "metaq_jax" / "core.py").write_text("x = 2\n")
    git(repo, "commit", "-qam", "change")
    manifest.record(repo, "results/n", 7, ["other"], {})
    report = manifest.manifest(repo)
    assert report["outputs"]["results/n"]["current"] and not report["outputs"]["results/a"]["current"]
    assert report["stale"] == ["results/a"]
    assert report["unrecorded"] == ["results/default/tuned.txt", "results/n/sweep", "results/x/timing.json"]


def shell_env():
    """The environment for a bash that sources produce.sh: this interpreter's python first on PATH."""
    return {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_produce_runs_once_then_skips_until_forced(repo):
    make = "mkdir -p results/f && echo $RANDOM$RANDOM > results/f/protocol.json"

    def produce(**extra):
        script = f"source results/produce.sh; produce results/f bash -c '{make}'"
        run = subprocess.run(["bash", "-c", script], cwd=repo, env={**shell_env(), **extra}, capture_output=True,
                             text=True, check=True)
        return run.stdout, (repo / "results/f/protocol.json").read_text()

    _, first = produce()
    out, second = produce()
    assert "current, not rerun: results/f" in out and second == first
    _, third = produce(ONLY="results/other*")
    assert third == first
    _, forced = produce(FORCE="1")
    assert forced != first
    assert json.loads((repo / "results/provenance.json").read_text())["results/f"]["command"] == ["bash", "-c", make]


def test_produce_hides_none_of_the_callers_variables(repo):
    # a regenerate script's `out`, read by a function that produce runs, is the script's own, not produce's OUT
    script = "source results/produce.sh; out=results; make() { mkdir -p $out/g/made; }; produce results/g/made make"
    subprocess.run(["bash", "-c", script], cwd=repo, env=shell_env(), capture_output=True, check=True)
    assert (repo / "results/g/made").is_dir()
    assert not (repo / "results/g/made/g").exists()  # where produce's own OUT would have put it
