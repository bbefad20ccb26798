"""Tracked sources, from Snakemake's own dry run: after a file of a `tree` source is edited,
added or removed, `snakemake -n results/pool_<run>.jsonl` plans extract and every pool
stage after it (the pool target included), nothing else; touched, or unchanged, nothing.

The pool stages' outputs are stand-ins and only the pool target runs, so the test needs no
model. Extract's key digests what the tree's files are (``scoder.plan``): a change gives
it and every stage after it new folders, and the pool target reads other files.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoder.config import validate
from scoder.plan import Plan
from test_workflow import copy_workflow, planned_jobs

REPO = Path(__file__).resolve().parent.parent
POOL_JOBS = {stage: 1 for stage in ("extract", "dedup", "filter", "quality", "decontaminate", "categorize",
                                    "seed", "pool")}
MODULE = '''"""Helpers."""


def mean(xs):
    """Arithmetic mean of a list of numbers."""
    return sum(xs) / len(xs)
'''


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args, "--configfile", "own.yaml"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """A copy of the workflow whose run `own` reads a small tree; its pool is up to date."""
    tmp = tmp_path_factory.mktemp("tracking")
    lib = tmp / "mylib"
    (lib / "tests").mkdir(parents=True)
    (lib / "stats.py").write_text(MODULE)
    (lib / "text.py").write_text('def shout(s):\n    """Upper-case s."""\n    return s.upper()\n')
    (lib / "tests" / "test_stats.py").write_text("def test_mean():\n    pass\n")
    workdir = copy_workflow(tmp / "repo")
    # quality by a hub model: not a file of the workflow, so the pool's DAG has no model job
    runs = {"own": {"extends": "tiny", "models": {"quality": "HuggingFaceTB/SmolLM2-135M-Instruct"},
                    "pool": {"sources": [{"type": "tree", "path": str(lib), "name": "mylib"}], "limit": None}}}
    (workdir / "own.yaml").write_text(yaml.safe_dump({"runs": runs}))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["runs"].update(runs)
    pool = Plan(validate(config)).runs["own"].pool
    for node in pool.stages().values():  # in the method's order: each newer than its inputs
        for name, file in node.files.items():
            Path(workdir, node.dir).mkdir(parents=True, exist_ok=True)
            Path(workdir, node.dir, file).write_text("{}" if name == "stats" else "")
    # the pool target for real: Snakemake records the files it read (its "input" rerun trigger)
    snakemake(workdir, "results/pool_own.jsonl")
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/pool_own.jsonl")
    return workdir, lib


@pytest.mark.parametrize("change, jobs", [("edit", POOL_JOBS), ("add", POOL_JOBS), ("remove", POOL_JOBS),
                                          ("touch", {}), ("add a test file", {})])
def test_a_changed_source_file_reruns_extract_and_what_follows_only(workflow, change, jobs):
    workdir, lib = workflow
    path = lib / {"add": "new.py", "add a test file": "tests/test_new.py"}.get(change, "stats.py")
    before = path.read_text() if path.exists() else None
    if change == "edit":
        path.write_text(MODULE.replace("Arithmetic mean", "Mean"))
    elif change == "remove":
        path.unlink()
    elif change == "touch":
        os.utime(path)
    else:
        path.write_text(MODULE)
    try:
        out = snakemake(workdir, "-n", "results/pool_own.jsonl")
    finally:
        path.unlink(missing_ok=True)
        if before is not None:
            path.write_text(before)
    assert planned_jobs(out) == jobs
    if not jobs:
        assert "Nothing to be done" in out
