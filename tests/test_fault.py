"""A kill at any moment loses nothing and pays nothing twice.

The micro run up to its enhanced synthesizer (the pool, the teacher's D_p, the synthesizer's
training) with the teacher served by a real llama.cpp server behind a counting proxy
(``llama_server``).  Snakemake runs in its own process group, which is killed with SIGKILL
in the middle of the teacher stage and again in the middle of the training job; each time
the user's two commands resume it (``snakemake --unlock``, then the same command with
``--rerun-incomplete``).  The outputs equal an uninterrupted run's, field by field, no
teacher request reaches the server twice, the server survives, and no process of the
killed run is left behind.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from llama_server import ALIAS, KEY, KEY_ENV, SKIP_REASON, CountingProxy, server  # noqa: F401 (a fixture)
from processes import left_behind, subreaper
from scoder.config import validate
from scoder.plan import Plan
from test_workflow import REPO, copy_workflow, micro_runs

pytest.importorskip("llama_cpp.server", reason=SKIP_REASON)

RUN = "fault"
CONFIG = "fault.yaml"
# what differs between two runs of the same work by nature: when and how long, and which attempt did it
VOLATILE = {"train_runtime_s", "resumed_from_step", "this_attempt"}


def fault_config(model: str, teacher_url: str) -> dict:
    """The micro run with the teacher served over HTTP, four seeds, and a training long enough to
    be caught in the middle."""
    micro = micro_runs(model)["runs"]["micro"]
    # max_length: a standalone snippet carries its imports, and a long one must not crowd out the answer
    train = {**micro["synthesizer"]["train"], "epochs": 6, "global_batch_size": 1, "max_length": 2048}
    return {"runs": {"micro": micro, RUN: {
        "extends": "micro",
        "models": {"teacher": ALIAS},
        "backends": {"teacher": {"backend": "openai", "base_url": teacher_url, "api_key_env": KEY_ENV,
                                 "max_concurrency": 2, "max_retries": 2, "timeout": 300}},
        "pool": {"categorize": {"categories": ["Algorithmic Problems", "Mathematical Problems",
                                               "Text Processing Problems", "System Problems"]}},
        "teacher": {"protocol": "two_step", "sampling": {"max_new_tokens": 160}},
        "synthesizer": {"checkpoints": 2, "train": train},
    }}}


class Workflow:
    """One copy of the workflow in ``root`` with its Snakemake command line."""

    def __init__(self, root: Path):
        self.root = root
        self.attempts, self.proc = 0, None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", CONFIG]

    def env(self) -> dict:
        return {**os.environ, KEY_ENV: KEY}

    def run(self, *args: str) -> None:
        proc = subprocess.run(self.command(*args), cwd=self.root, env=self.env(), capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"snakemake {' '.join(args)} failed in {self.root}:\n{proc.stderr[-6000:]}\n{self.logs()}")

    def start(self, *args: str) -> subprocess.Popen:
        """Snakemake in a process group of its own, as a shell starts a command."""
        self.attempts += 1
        out = open(self.root / f"attempt{self.attempts}.log", "w")
        self.proc = subprocess.Popen(self.command(*args), cwd=self.root, env=self.env(), stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc

    def stop(self) -> None:
        """Kill what ``start`` started, if it still runs (a failed test leaves nothing behind)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def logs(self) -> str:
        return "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in self.root.glob("work/*/*/log*.txt"))[-12000:]


def kill_when(proc: subprocess.Popen, ready, what: str, workflow: Workflow, timeout: float = 900) -> None:
    """SIGKILL to Snakemake's whole process group as soon as ``ready()``."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (rc {proc.returncode}) before {what}:\n"
                        f"{(workflow.root / f'attempt{workflow.attempts}.log').read_text()[-4000:]}\n{workflow.logs()}")
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def comparable(path: Path):
    """A file's content with what legitimately differs between runs left out."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    if path.suffix == ".json":
        return strip(json.loads(path.read_text()))
    if path.suffix == ".jsonl":
        return [strip(json.loads(line)) for line in path.read_text().splitlines()]
    return path.read_bytes()


def work_files(root: Path) -> dict[str, Path]:
    """Every artifact under work/ but the logs and timings."""
    return {str(p.relative_to(root)): p for p in sorted((root / "work").rglob("*"))
            if p.is_file() and p.name not in ("log.txt", "benchmark.tsv")}


@pytest.fixture
def proxy(server):
    p = CountingProxy(server.port)
    yield p
    p.release()
    p.shutdown()
    p.server_close()


@pytest.mark.slow
def test_kills_in_teacher_and_training_lose_nothing_and_pay_nothing_twice(server, proxy, micro_model, tmp_path):
    config = fault_config(micro_model, proxy.url)
    full = yaml.safe_load((REPO / "config/config.yaml").read_text())
    full["runs"].update(config["runs"])
    run = Plan(validate(full)).runs[RUN]
    seeds, dp = run.pool.seed.path("seeds"), run.teacher
    synthesizer = run.iterations[0].synthesizer
    target = synthesizer.path("log")

    # the pool once, then two copies of the workflow from there on
    base = Workflow(copy_workflow(tmp_path / "base"))
    (base.root / CONFIG).write_text(yaml.safe_dump(config))
    base.run(seeds)
    n_seeds = len((base.root / seeds).read_text().splitlines())
    assert n_seeds >= 3
    shutil.copytree(base.root, tmp_path / "clean", symlinks=True)
    shutil.copytree(base.root, tmp_path / "killed", symlinks=True)
    clean, killed = Workflow(tmp_path / "clean"), Workflow(tmp_path / "killed")

    start = len(proxy.log)
    clean.run(target)
    clean_requests = proxy.forwarded(start)
    assert len(clean_requests) == 2 * n_seeds  # two_step: a problem and a solution per seed

    start = len(proxy.log)
    cache = killed.root / "work/cache/llm"
    with subreaper(), contextlib.ExitStack() as cleanup:
        cleanup.callback(killed.stop)
        # 1. killed while the teacher waits on its 4th answer; all answered ones are cached
        proxy.hold_after = len(proxy.chats(200)) + 3
        proc = killed.start(target)
        kill_when(proc, lambda: proxy.held and not proxy.in_flight
                  and len(list(cache.rglob("*.json"))) == len(proxy.forwarded(start)),
                  "the teacher's 4th request", killed)
        assert left_behind({server.proc.pid}) == []
        proxy.release()
        assert server.proc.poll() is None
        answered_before_kill = len(proxy.forwarded(start))
        assert 3 <= answered_before_kill < 2 * n_seeds
        assert not (killed.root / dp.path("samples")).exists()

        # 2. killed in training, once the first checkpoint and its trainer state are saved
        progress = killed.root / synthesizer.dir / "progress/train"
        killed.run("--unlock")
        proc = killed.start("--rerun-incomplete", target)
        kill_when(proc, lambda: (progress / "ckpt1").is_dir() and any(progress.glob("_state/*/trainer_state.json")),
                  "the first saved checkpoint", killed)
        assert left_behind({server.proc.pid}) == []
        assert (killed.root / dp.path("samples")).exists() and not (progress / "train_log.json").exists()

        # 3. resumed to the end
        killed.run("--unlock")
        killed.run("--rerun-incomplete", target)
    assert server.proc.poll() is None

    sent = proxy.forwarded(start)
    assert len(sent) == len(set(sent)), "a teacher request reached the server twice"
    assert sorted(sent) == sorted(clean_requests)
    log = json.loads((killed.root / target).read_text())
    assert log["resumed_from_step"] > 0 and log["global_step"] == log["max_steps"]

    clean_files, killed_files = work_files(clean.root), work_files(killed.root)
    assert sorted(killed_files) == sorted(clean_files)
    for name, path in clean_files.items():
        assert comparable(killed_files[name]) == comparable(path), f"{name} differs after the kills"
    # the resumed teacher took what was answered before the kill from the cache
    assert json.loads((killed.root / dp.path("stats")).read_text())["this_attempt"]["usage"]["cached"] == (
        answered_before_kill)
