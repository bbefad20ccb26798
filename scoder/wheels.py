"""The wheels of a reproduction package (``python -m scoder.archive create --wheels``).

Every package of the lock file (``pip freeze``), and the build backend that ``pip
install -e .`` needs, as a wheel: through ``pip wheel --no-deps`` with pip's own
configuration (the index or find-links that installed the environment), so downloaded
where there is a wheel and built from the sdist where there is none. Each wheel is
checked against what is installed: the same version, local label included (torch
``2.13.0+cpu`` is not ``2.13.0``), and the same file hashes as the installed RECORD; a
rebuilt C extension may differ (builds are not bit-reproducible) and is reported.
``./install.sh --offline`` installs them with ``pip install --no-index``.

    from scoder.wheels import bundle_wheels
    rebuilt = bundle_wheels(open("requirements.lock.txt").read(), Path("wheels"))
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from scoder.archive import ArchiveError

# The build backend of pyproject.toml: `pip install -e .` needs its wheel offline.
BUILD_WHEELS = ("setuptools",)
# Compiled files a wheel rebuilt from an sdist may not reproduce bit for bit.
EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib")


def _pins(lock: str) -> list[str]:
    """The requirement lines of a lock file, and the build backend's (installed) version."""
    pins = [line.strip() for line in lock.splitlines() if line.strip() and not line.startswith("#")]
    for name in BUILD_WHEELS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _record(lines: list[str]) -> dict[str, str]:
    """path -> sha256 (urlsafe base64) of a RECORD, without the dist-info's own files."""
    out = {}
    for line in lines:
        path, digest, _ = (line.rsplit(",", 2) + ["", ""])[:3]
        if digest.startswith("sha256=") and ".dist-info/" not in path:
            out[path] = digest[len("sha256="):]
    return out


def _differs_from_installed(wheel: Path, name: str) -> list[str]:
    """Files of ``wheel`` whose hash is not the installed one (its RECORD against the
    installed RECORD); none when the package is not installed here."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        packed = _record(z.read(record).decode("utf-8").splitlines())
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    installed = {str(f): f.hash.value for f in dist.files or [] if f.hash is not None}
    return sorted(p for p, digest in packed.items() if p in installed and installed[p] != digest)


def bundle_wheels(lock: str, dest: Path) -> dict[str, list[str]]:
    """Put a wheel of every pin of ``lock`` (and of the build backend) into ``dest``;
    returns the rebuilt C extensions that differ from the installed ones, by package.
    Raises ArchiveError when pip cannot get one or a wheel is another build."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    pins = _pins(lock)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                           "-q", "-w", str(dest), *pins], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ArchiveError(f"pip wheel could not get every locked package ({proc.stderr.strip()[-1500:]}); "
                           "point pip at the index or find-links that installed them "
                           "(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS)")
    wheels = {}
    for path in dest.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels[name] = (version, path)
    rebuilt = {}
    for pin in pins:
        req = Requirement(pin)
        exact = [Version(s.version) for s in req.specifier if s.operator == "=="]
        version, path = wheels.get(canonicalize_name(req.name), (None, None))
        # Version equality includes the local label: 2.13.0+cpu is not 2.13.0
        if path is None or (exact and version != exact[0]):
            raise ArchiveError(f"no wheel of {pin} in the bundle (pip got {path and path.name})")
        differ = _differs_from_installed(path, req.name) if exact else []
        if any(not f.endswith(EXTENSION_SUFFIXES) for f in differ):
            raise ArchiveError(f"{path.name} is another build than the installed {pin} (e.g. {differ[0]} "
                               "differs): point pip at the index or find-links that installed it")
        if differ:
            rebuilt[req.name] = differ
    return rebuilt
