"""The reproduction package: what goes in, that it unpacks to a tree that plans the same
jobs, and that a rerun's results are told apart from the reference field by field."""
import base64
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from scoder import archive, wheels

REPO = Path(__file__).resolve().parent.parent


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    """A small git checkout: a committed file, an ignored output, an untracked new file, a result."""
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    (root / "Snakefile").write_text("rule all:\n    output: 'x'\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".gitignore").write_text("/work/\n")
    (root / "results" / ".gitignore").write_text("*\n!.gitignore\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    (root / "work").mkdir()
    (root / "work" / "big.bin").write_bytes(b"\0" * 1000)
    (root / "new_rule.smk").write_text("# not committed yet\n")
    (root / "results" / "scoder_tiny.json").write_text(json.dumps({"run": "tiny"}))
    (root / "results" / "scoder_tiny_iter1.json").write_text(json.dumps({"probe": "iter1"}))
    (root / "results" / "scoder_tinyx.json").write_text("{}")  # another run
    return root


def unpack(path, dest):
    with tarfile.open(path) as tar:
        tar.extractall(dest, filter="data")
    (folder,) = Path(dest).iterdir()
    return folder


def test_package_holds_the_tree_git_sees_and_the_reference_results(checkout, tmp_path):
    path, manifest = archive.create_archive(checkout, tmp_path / "a.tar.gz")
    folder = unpack(path, tmp_path / "out")
    names = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert {"Snakefile", "run.sh", "new_rule.smk", ".gitignore", "results/.gitignore"} <= names
    assert not any(n.startswith("work/") for n in names)  # ignored outputs stay out
    assert {"reference_results/scoder_tiny.json", "reference_results/scoder_tiny_iter1.json"} <= names
    assert "reference_results/scoder_tinyx.json" not in names
    assert {"MANIFEST.json", "README_REPRODUCE.md", "requirements.lock.txt"} <= names
    assert folder.name.endswith("-dirty") and manifest["source"]["dirty"]
    assert (folder / "run.sh").stat().st_mode & 0o111  # scripts stay executable
    assert archive.verify(folder) == []
    (folder / "Snakefile").write_text("changed")
    assert archive.verify(folder) == ["Snakefile"]
    readme = (folder / "README_REPRODUCE.md").read_text()
    assert "./install.sh && snakemake --cores 2 results/scoder_tiny.json" in readme
    assert "cost.stages.*.wall_s" in readme


def test_package_is_byte_identical_for_the_same_tree(checkout, tmp_path):
    a, _ = archive.create_archive(checkout, tmp_path / "a.tar.gz")
    b, _ = archive.create_archive(checkout, tmp_path / "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()


def test_outside_a_git_checkout_it_says_so(tmp_path):
    with pytest.raises(archive.ArchiveError, match="git checkout"):
        archive.create_archive(tmp_path)


def test_compare_separates_expected_from_unexpected_differences():
    ref = {"data": {"iterations": [{"selected": 3, "selection_cut": 0.42}]},
           "cost": {"stages": {"extract": {"wall_s": 6.2, "jobs": 1}}, "total_wall_s": 6.2},
           "provenance": {"git_commit": "abc", "packages": {"torch": "2.13.0"}}}
    rerun = json.loads(json.dumps(ref))
    rerun["cost"]["stages"]["extract"]["wall_s"] = 7.0
    rerun["cost"]["total_wall_s"] = 7.0
    rerun["provenance"]["git_commit"] = None
    result = archive.compare_results(ref, rerun)
    assert set(result["expected"]) == {"cost.stages.extract.wall_s", "cost.total_wall_s", "provenance.git_commit"}
    assert result["unexpected"] == {} and result["identical"] == 4
    rerun["data"]["iterations"][0]["selection_cut"] = 0.43
    assert archive.compare_results(ref, rerun)["unexpected"] == {
        "data.iterations[0].selection_cut": {"reference": 0.42, "rerun": 0.43}}


def test_compare_cli_exit_code(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "ref" / "scoder_t.json").write_text(json.dumps({"a": 1, "cost": {"total_wall_s": 1}}))
    (tmp_path / "new" / "scoder_t.json").write_text(json.dumps({"a": 1, "cost": {"total_wall_s": 2}}))
    assert archive.main(["compare", str(tmp_path / "ref"), str(tmp_path / "new")]) == 0
    (tmp_path / "new" / "scoder_t.json").write_text(json.dumps({"a": 2, "cost": {"total_wall_s": 2}}))
    assert archive.main(["compare", str(tmp_path / "ref"), str(tmp_path / "new")]) == 1


def planned_jobs(cwd: Path) -> dict[str, int]:
    """{rule: count} of every job the default target needs (a forced dry run)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-F", "--cores", "2"], cwd=cwd,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (proc.stdout + proc.stderr).split("Job stats:", 1)[-1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
            if m.group(1) not in ("total", "job", "count")}


def test_unpacked_workflow_plans_the_same_jobs(tmp_path):
    path, manifest = archive.create_archive(REPO, tmp_path / "repo.tar.gz")
    folder = unpack(path, tmp_path / "out")
    assert archive.verify(folder) == []
    assert not (folder / ".git").exists() and not (folder / "work").exists()
    jobs = planned_jobs(folder)
    assert jobs and jobs == planned_jobs(REPO)


def _sdist(links: Path) -> None:
    """An sdist-only package, ``sdist-probe`` 0.1, in the find-links dir ``links``."""
    src = links / "src" / "sdist_probe-0.1"
    src.mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "sdist-probe"\nversion = "0.1"\n[tool.setuptools]\npy-modules = ["sdist_probe"]\n')
    (src / "sdist_probe.py").write_text("BUILT = True\n")
    with tarfile.open(links / "sdist_probe-0.1.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)


def _clean_env(**extra) -> dict:
    """This environment without pip's settings and this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, **extra}


def test_offline_bundle_installs_with_no_index(tmp_path, monkeypatch):
    """A package made with ``wheels=True`` installs into a fresh venv with the index off:
    a representative lock here (a pure-Python wheel, a compiled one, one pip builds from
    its sdist) plus the build backend for the editable install of the package itself."""
    links = tmp_path / "links"
    _sdist(links)
    monkeypatch.setenv("PIP_FIND_LINKS", " ".join(filter(None, [str(links), os.environ.get("PIP_FIND_LINKS")])))
    pins = [f"{name}=={metadata.version(name)}" for name in ("PyYAML", "tqdm")] + ["sdist-probe==0.1"]
    lock = f"# pip freeze of Python {platform.python_version()} that made reference_results/\n" + "\n".join(pins)
    monkeypatch.setattr(archive, "environment_lock", lambda: lock + "\n")
    path, manifest = archive.create_archive(REPO, tmp_path / "offline.tar.gz", wheels=True)
    folder = unpack(path, tmp_path / "out")
    bundled = sorted(p.name.split("-")[0].lower() for p in (folder / "wheels").iterdir())
    assert bundled == ["pyyaml", "sdist_probe", "setuptools", "tqdm"]
    assert manifest["wheels"]["count"] == 4 and archive.verify(folder) == []
    assert "./install.sh --offline && snakemake" in (folder / "README_REPRODUCE.md").read_text()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_CONFIG_FILE=os.devnull,
                     PIP_NO_INDEX="1", SCODER_NO_APT="1")
    proc = subprocess.run(["./install.sh", "--offline"], cwd=folder, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = "import scoder, sdist_probe, tqdm, yaml; print(scoder.__file__, sdist_probe.BUILT)"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", check], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.stdout.split() == [str(folder / "scoder" / "__init__.py"), "True"], out.stderr[-2000:]
    # a wheel short: a fresh venv fails on it (nothing is fetched from elsewhere)
    (folder / "wheels" / next(p for p in os.listdir(folder / "wheels") if p.startswith("tqdm"))).unlink()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    proc = subprocess.run(["./install.sh", "--offline"], cwd=folder, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "tqdm" in proc.stderr


def test_a_wheel_of_another_build_is_refused(tmp_path, monkeypatch):
    """The bundle must hold the build that is installed: a wheel of the same name and
    version whose files differ (a CUDA torch for the CPU one) is an error, not packed."""
    version = metadata.version("tqdm")
    fake = tmp_path / "links" / f"tqdm-{version}-py3-none-any.whl"
    fake.parent.mkdir()
    body = b"# not the installed tqdm\n"
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    info = f"tqdm-{version}.dist-info"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("tqdm/__init__.py", body)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: tqdm\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"tqdm/__init__.py,sha256={digest},{len(body)}\n{info}/RECORD,,\n")
    monkeypatch.setattr(wheels, "BUILD_WHEELS", ())
    for key, value in _clean_env(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1",
                                 PIP_FIND_LINKS=str(fake.parent)).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(archive.ArchiveError, match="another build.*tqdm/__init__.py"):
        wheels.bundle_wheels(f"tqdm=={version}\n", tmp_path / "wheels")
    with pytest.raises(archive.ArchiveError, match="pip wheel could not get"):
        wheels.bundle_wheels(f"tqdm=={version}+cpu\n", tmp_path / "wheels2")
