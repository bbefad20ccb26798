"""Running on a cluster: `--profile slurm` resources, conda environments, a real SLURM cluster.

The first test reads Snakemake's own dry run of the paper run through the repository's
profile; the next ones check that every rule's conda environment exists and pins what
requirements.txt pins (no conda here to build them).  The last starts a single-node SLURM cluster on this machine
(tests/cluster/slurm_check.py, root only), runs the snippet-pool slice of a small run
through the profile and locally, and checks SLURM's records and the outputs.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_workflow import copy_workflow

REPO = Path(__file__).resolve().parent.parent
CHECK = REPO / "tests" / "cluster" / "slurm_check.py"
SKIP = 77   # slurm_check.py's exit status when SLURM cannot be had here


def planned_resources(output: str) -> dict[str, list[dict]]:
    """{rule: [resources of each planned job]} from a dry run's job listing."""
    jobs: dict[str, list[dict]] = {}
    rule = None
    for line in output.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources: "):
            pairs = line.strip().removeprefix("resources: ").split(", ")
            jobs.setdefault(rule, []).append(dict(kv.split("=", 1) for kv in pairs))
            rule = None
    return jobs


def test_profile_takes_gpus_partition_and_account_from_config_and_command_line(tmp_path):
    workdir = copy_workflow(tmp_path / "repo")
    (workdir / "cluster.yaml").write_text(yaml.safe_dump({"runs": {"q14_cluster": {
        "extends": "q14",
        "resources": {"train": {"gpu_model": "a100", "slurm_partition": "gpu", "slurm_account": "lab"},
                      "generate": {"gres": "gpu:a100:1"}},
    }}}))
    cmd = [sys.executable, "-m", "snakemake", "results/scoder_q14_cluster.json", "-n", "--profile", "slurm",
           "--set-resources", "evaluate:slurm_partition=long", "--configfile", "cluster.yaml"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = planned_resources(proc.stdout + proc.stderr)

    synthesizer = [job for rule, planned in jobs.items() if rule.startswith("synthesizer") for job in planned]
    assert synthesizer
    for train in synthesizer:           # full fine-tuning: the paper's 8 GPUs, of the named model
        assert (train["gpu"], train["gpu_model"], train["slurm_partition"], train["slurm_account"]) == (
            "8", "a100", "gpu", "lab")
        assert train["cpus_per_task"] == "32" and train["mem_mb"] == "512000" and train["runtime"] == "1440"
        # how the job runs its model (scoder.device), and where its family is, for its messages
        assert (train["dtype"], train["attn_implementation"], train["gradient_checkpointing"]) == (
            "bfloat16", "sdpa", "1")
        assert train["family"] == "runs.q14_cluster.resources.train"
    teacher = jobs["teacher"][0]         # a generate job: its gres replaces gpu, no model or partition
    assert teacher["gres"] == "gpu:a100:1" and teacher["gpu"] == "0"
    assert "gpu_model" not in teacher and "slurm_partition" not in teacher
    assert jobs["evaluate"][0]["slurm_partition"] == "long"   # --set-resources wins over config
    extract = jobs["extract"][0]         # a CPU job: no GPUs, the cluster's default partition
    assert extract["gpu"] == "0" and "slurm_partition" not in extract and "gres" not in extract
    assert extract["dtype"] == "auto" and extract["gradient_checkpointing"] == "0"
    assert jobs["report"][0]["mem_mb"] == "8000"   # rules outside the families: the profile's defaults


def pins(lines) -> dict[str, str]:
    """{package name (lower case): version} of `name==version` lines."""
    out = {}
    for line in lines:
        if m := re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s#]+)\s*(#.*)?", line):
            out[m.group(1).lower()] = m.group(2)
    return out


REQUIREMENTS = pins((REPO / "requirements.txt").read_text().splitlines())
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "pytest"}   # where snakemake runs, not in jobs


def test_every_rule_names_a_conda_environment_of_the_repository():
    named = set()
    for smk in (REPO / "rules").glob("*.smk"):
        rules = len(re.findall(r"^\s*(?:rule|checkpoint)\b[\w ]*:\s*$", smk.read_text(), re.M))
        envs = re.findall(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", smk.read_text(), re.M)
        assert len(envs) == rules, f"{smk.name}: {rules} rules but {len(envs)} conda: directives"
        for env in envs:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} does not exist"
            named.add((smk.parent / env).resolve().name)
    assert named == {p.name for p in (REPO / "envs").glob("*.yaml")}, "an environment no rule uses"


@pytest.mark.parametrize("env", sorted(p.stem for p in (REPO / "envs").glob("*.yaml")))
def test_conda_environment_pins_the_requirements_and_installs_the_package(env):
    spec = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    pinned = pins(pip)
    assert len(pinned) == len(pip), f"envs/{env}.yaml: unpinned pip lines {[p for p in pip if '==' not in p]}"
    wanted = {name: version for name, version in REQUIREMENTS.items() if name not in RUNNER_ONLY}
    assert {name: pinned.get(name) for name in wanted} == wanted, f"envs/{env}.yaml differs from requirements.txt"
    assert "python=3.11" in spec["dependencies"]
    deploy = REPO / "envs" / f"{env}.post-deploy.sh"   # Snakemake runs it after creating the environment
    assert deploy.is_file() and "pip install" in deploy.read_text() and "-e ." in deploy.read_text()


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
    except OSError:
        return False


@pytest.mark.slow
def test_real_slurm_cluster_runs_the_pool_slice_as_slurm_jobs_with_local_results(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a real SLURM cluster needs root (daemons, munge key, apt-get install slurm-wlm)")
    if not (shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists() or shutil.which("apt-get")):
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    report_path = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, str(CHECK), "--report", str(report_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)   # the check stops its daemons on SIGTERM
        out, _ = proc.communicate(timeout=120)
        pytest.fail(f"slurm_check.py ran over 15 minutes:\n{out[-6000:]}")
    if proc.returncode == SKIP:
        pytest.skip(out.strip().splitlines()[-1])
    assert proc.returncode == 0, out[-12000:]

    report = json.loads(report_path.read_text())
    assert sorted(job["rule"] for job in report["slurm_jobs"]) == sorted(report["stages"])
    assert {job["state"] for job in report["slurm_jobs"]} == {"COMPLETED"}
    assert set(report["targets"]) <= set(report["identical_files"]) and report["seeds"] > 0
    assert any(f.endswith("labelled.jsonl") for f in report["identical_files"])   # the LLM stage too
    assert not [name for name, pid in report["daemons"].items() if _alive(pid)], "daemons left running"
