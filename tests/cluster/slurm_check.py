"""A real single-node SLURM cluster runs a slice of the tiny pipeline through `--profile slurm`.

    sudo python3 tests/cluster/slurm_check.py [--keep DIR] [--report report.json]

What it does (as root; tests/test_slurm.py runs it in CI):
1. starts a single-node cluster (slurm_cluster.py: installs slurm-wlm and munge
   with apt-get if missing, ~20 s; writes /etc/slurm/slurm.conf for this host;
   starts munged unless one runs, slurmctld and slurmd; waits for the node idle);
2. copies the workflow into two folders and runs the snippet-pool slice of a
   run like tiny (extract, dedup, filter, quality, decontaminate, categorize,
   seed: seven jobs in a chain; the stdlib's `email` package as corpus and a
   random micro model as quality classifier keep it to minutes) in one through
   `snakemake --profile slurm` (the repository's profile, with
   `--slurm-status-command squeue` because this cluster has no accounting
   database) and, at the same time, in the other locally with `--cores 1`.
   Every job has one CPU in both, so torch computes the same floats;
3. checks from SLURM's own records (squeue --states=all, scontrol show job, the
   slurmctld log) that every job Snakemake submitted ran as a SLURM job in the
   `debug` partition with the configured CPUs and memory and completed with exit
   code 0, and that the two runs wrote the same files, byte for byte;
4. cancels what is left and stops slurmd, slurmctld and munged (if it started it)
   by their pids, in that order, and removes the slurm.conf, also on failure or
   SIGTERM.

Exit status 0 when all checks pass, 1 when one fails, 77 when SLURM cannot be had
here (not root, no apt-get, or the install failed); the reason is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

from slurm_cluster import PARTITION, SlurmCluster, Unavailable, ensure_slurm, log

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))   # the scoder package of this checkout
RUN = "slurm_slice"
POOL_STAGES = ("extract", "dedup", "filter", "quality", "decontaminate", "categorize", "seed")
JOB_CPUS, JOB_MEM_MB = 1, 2000   # two jobs fit the node at once; one thread keeps floats identical to --cores 1
SKIP = 77                         # exit status: SLURM cannot be had here


# ---------------------------------------------------------------- the workflow slice
def copy_workflow(dst: Path) -> None:
    dst.mkdir(parents=True)
    for name in ("Snakefile", "rules", "scripts", "config", "envs", "slurm", "report", "schemas"):
        src = REPO / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)


def slice_config(model: str) -> dict:
    """A run like tiny whose pool slice is quick: a few stdlib modules as corpus, a micro
    model labelling quality, CPU-only jobs in the test partition."""
    family = {"gpu": 0, "cpus": JOB_CPUS, "mem_mb": JOB_MEM_MB, "runtime": 15, "slurm_partition": PARTITION}
    corpus = str(Path(sysconfig.get_paths()["stdlib"]) / "email")
    return {"runs": {RUN: {
        "extends": "tiny",
        "models": {"quality": model},
        "pool": {"sources": [{"type": "tree", "path": corpus}], "limit": 40,
                 "quality": {"threshold": 0.0, "shots": 1}},
        "resources": {name: dict(family) for name in ("train", "generate", "gradients", "cpu")},
    }}}


def slice_targets(config: dict) -> tuple[list[str], list[str]]:
    """(target files, stage folders) of the run's snippet pool, laid out by the workflow's own plan."""
    from scoder.config import deep_merge, validate
    from scoder.plan import FILES, Plan

    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    plan = Plan(validate(deep_merge(base, config)))
    pool = plan.runs[RUN].pool
    names = ["seeds"] + [name for name in FILES["seed"] if name != "seeds"]   # seeds.jsonl first
    return [pool.seed.path(name) for name in names], [getattr(pool, stage).dir for stage in POOL_STAGES]


class Snakemake:
    """One snakemake process in a workflow copy, output to ``snakemake.log`` there."""

    def __init__(self, workdir: Path, args: list[str], env: dict):
        self.workdir, self.cmd = workdir, [sys.executable, "-m", "snakemake", *args]
        self.out_path = workdir / "snakemake.log"
        self.started = time.time()
        log(f"({workdir.name}) snakemake {' '.join(args)}")
        with open(self.out_path, "w") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait(self, timeout: float) -> str:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{' '.join(self.cmd)} did not finish in {timeout:.0f} s:\n"
                                 f"{self.out_path.read_text()[-4000:]}")
        out = self.out_path.read_text()
        if rc != 0:
            logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in sorted(self.workdir.glob("work/*/*/log*.txt")))
            slurm = "\n".join(f"== {p}\n{p.read_text()[-2000:]}"
                              for p in sorted(self.workdir.glob(".snakemake/slurm_logs/**/*.log")))
            raise AssertionError(f"{' '.join(self.cmd)} failed ({rc}) in {self.workdir}:\n{out[-6000:]}\n"
                                 f"{logs[-6000:]}\n{slurm[-6000:]}")
        return out

    def seconds(self) -> float:
        """Its wall time (until its last output line)."""
        return round(self.out_path.stat().st_mtime - self.started, 1)

    def kill(self) -> None:
        """Stop it (and the jobs it runs locally) by its process group, which it leads."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def compared_files(root: Path, dirs: list[str]) -> list[str]:
    """Every file a stage wrote, minus its log and benchmark (timings differ run to run)."""
    files = []
    for d in dirs:
        for p in sorted((root / d).rglob("*")):
            if p.is_file() and not re.fullmatch(r"log.*\.txt|benchmark.*\.tsv", p.name):
                files.append(str(p.relative_to(root)))
    return files


# ---------------------------------------------------------------- the check
def check(tmp: Path) -> dict:
    """Run everything in ``tmp``; return a report, raise AssertionError on a failed check."""
    sys.path.insert(0, str(REPO / "tests"))  # the tests' micro model
    from micro_model import build_micro_model

    t0 = time.time()
    ensure_slurm()
    model = str(build_micro_model(tmp / "micro-model"))
    config = slice_config(model)
    targets, dirs = slice_targets(config)
    report: dict = {"targets": targets, "stages": list(POOL_STAGES)}

    cluster_dir, local_dir = tmp / "on-slurm", tmp / "local"
    for d in (cluster_dir, local_dir):
        copy_workflow(d)
        (d / "slice.yaml").write_text(yaml.safe_dump(config))

    # The copies import the scoder package of this checkout, in the SLURM jobs too (sbatch --export=ALL).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    runs: list[Snakemake] = []
    with SlurmCluster(tmp / "slurm", env) as cluster:
        report["daemons"] = dict(cluster.pids)
        report["cluster_up_s"] = round(time.time() - t0, 1)
        try:
            # The local run goes alongside: the SLURM run mostly waits for the controller.
            runs.append(Snakemake(local_dir, [*targets, "--cores", "1", "--configfile", "slice.yaml"], env))
            runs.append(Snakemake(cluster_dir, [*targets, "--profile", "slurm", "--configfile", "slice.yaml",
                                                "--slurm-status-command", "squeue",
                                                "--slurm-init-seconds-before-status-checks", "10",
                                                "--slurm-keep-successful-logs", "--retries", "0"], cluster.env))
            local, on_slurm = runs
            out = on_slurm.wait(timeout=480)
            report["slurm_run_s"] = on_slurm.seconds()
            submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
            report["slurm_jobs"] = check_slurm_records(submitted, cluster.records(),
                                                       (cluster.root / "log/slurmctld.log").read_text(), cluster_dir)
            local.wait(timeout=240)
            report["local_run_s"] = local.seconds()
        finally:
            for run in runs:
                run.kill()

    slurm_files, local_files = compared_files(cluster_dir, dirs), compared_files(local_dir, dirs)
    assert slurm_files == local_files, f"the runs wrote different files:\n{slurm_files}\n{local_files}"
    assert all(t in slurm_files for t in targets), f"targets missing: {targets}"
    _, mismatch, errors = filecmp.cmpfiles(cluster_dir, local_dir, slurm_files, shallow=False)
    assert not mismatch and not errors, f"files differ between the SLURM and the local run: {mismatch + errors}"
    report["identical_files"] = slurm_files
    report["seeds"] = len((cluster_dir / targets[0]).read_text().splitlines())
    assert report["seeds"] > 0, f"the slice selected no seeds ({targets[0]} is empty): nothing was compared"
    report["total_s"] = round(time.time() - t0, 1)
    return report


def check_slurm_records(submitted: dict, records: dict, ctld_log: str, workdir: Path) -> list[dict]:
    """Every pool stage ran as exactly one completed SLURM job with the requested resources."""
    assert submitted, "Snakemake reported no SLURM submissions"
    jobs = []
    for slurm_id in submitted.values():
        assert slurm_id in records, f"SLURM job {slurm_id} is unknown to the controller (squeue --states=all)"
        rec = records[slurm_id]
        rule = re.match(r"rule_([a-z_]+?)_wildcards", rec.get("Comment", ""))
        assert rule, f"SLURM job {slurm_id} carries no Snakemake rule comment: {rec.get('Comment')}"
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", (
            f"SLURM job {slurm_id} ({rule.group(1)}): {rec['JobState']} exit {rec['ExitCode']}")
        assert rec["Partition"] == PARTITION, f"job {slurm_id} ran in partition {rec['Partition']}"
        assert rec["NumCPUs"] == str(JOB_CPUS), f"job {slurm_id} had {rec['NumCPUs']} CPUs"
        assert rec["MinMemoryNode"] == f"{JOB_MEM_MB}M", f"job {slurm_id} asked for {rec['MinMemoryNode']}"
        assert Path(rec["WorkDir"]).resolve() == workdir.resolve(), f"job {slurm_id} ran in {rec['WorkDir']}"
        assert re.search(rf"_job_complete: JobId={slurm_id} done", ctld_log), (
            f"slurmctld's log does not record job {slurm_id} completing")
        jobs.append({"slurm_id": slurm_id, "rule": rule.group(1), "state": rec["JobState"],
                     "node": rec["NodeList"], "run_time": rec["RunTime"]})
    rules = sorted(j["rule"] for j in jobs)
    assert rules == sorted(POOL_STAGES), f"SLURM ran {rules}, expected one job per stage {sorted(POOL_STAGES)}"
    return jobs


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--report", type=Path, help="write the report (JSON) here")
    args = parser.parse_args()
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the daemons are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    if os.geteuid() != 0:
        print("SKIP: a SLURM cluster needs root (daemons, munge key)")
        return SKIP
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            tmp = args.keep
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slurm_check_")))
        try:
            report = check(tmp)
        except Unavailable as e:
            print(f"SKIP: {e}")
            return SKIP
        except AssertionError as e:
            print(f"FAIL: {e}")
            return 1
    log(json.dumps({k: v for k, v in report.items() if k != "identical_files"}, indent=1))
    log(f"{len(report['identical_files'])} files identical between the SLURM and the local run")
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
