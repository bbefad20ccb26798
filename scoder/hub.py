"""Hugging Face hub models: which revision each job loads, pinned or recorded.

A run may pin a hub model to a revision (a commit, tag or branch) in config::

    revisions: {Qwen/Qwen2.5-Coder-14B-Instruct: 5a7a5d84fa2d4e8e7a3f8c4a2d0e1e4c3b2a1f00}

The plan then names that model ``name@revision`` in the settings of every stage
that uses it (``pin_models``), so the pin is part of those stages' keys.  Before
a job's stage runs, ``resolve_settings`` replaces each hub model of its settings
(``name`` or ``name@revision``) by the local snapshot folder of that revision in
the Hugging Face cache, downloading it if needed (``HF_HUB_OFFLINE=1``: the cache
only).  Every loader (transformers, TRL under accelerate, vLLM, the embedder)
therefore reads exactly that commit, and the job records it in
``hub_models.json`` beside its log; the results' provenance gathers them
(``recorded_revisions``).  Local folders, ``work/`` outputs, embedded models and
models served through an OpenAI-compatible API are left alone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

RECORD = "hub_models.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+(@[A-Za-z0-9][A-Za-z0-9_./-]*)?$")
# weights in other formats than the loaders read (Llama's original/ holds a second copy)
_IGNORE = ["original/*", "*.pth", "*.pt", "*.gguf", "*.onnx", "onnx/*", "*.msgpack", "*.h5", "*.ot", "openvino/*"]
# settings that name a model a stage loads
_MODEL_KEYS = ("model", "embedder")


def pin(name: str, revisions: dict[str, str]) -> str:
    """``name@revision`` when the run pins ``name``, else ``name``."""
    return f"{name}@{revisions[name]}" if name in revisions else name


def pin_models(settings: dict) -> dict:
    """A run's settings with every model it pins (``revisions``) named ``name@revision``:
    ``models`` and the scorer's data sources (SCoder)."""
    revisions = settings.get("revisions") or {}
    if not revisions:
        return settings
    out = {**settings, "models": {role: pin(name, revisions) for role, name in settings["models"].items()}}
    data = settings.get("scorer", {}).get("data")
    if data:
        sources = [{**src, "model": pin(src["model"], revisions)} if "model" in src else src for src in data["sources"]]
        out["scorer"] = {**settings["scorer"], "data": {**data, "sources": sources}}
    return out


def split(model: str) -> tuple[str, str | None]:
    """(hub name, revision or None) of ``name`` or ``name@revision``."""
    name, _, revision = model.partition("@")
    return name, revision or None


def is_hub_model(value) -> bool:
    """Whether a setting names a hub model (``org/name[@revision]``), not a local folder or file."""
    return (isinstance(value, str) and bool(_HUB_ID.match(value)) and not value.startswith("work/")
            and not Path(value).exists())


def snapshot(model: str) -> tuple[str, str]:
    """(local folder, commit) of a hub model at its revision (default: main).

    Online, the revision is resolved to its commit and that commit's files are downloaded
    into the Hugging Face cache (safetensors weights only where the repository has them);
    offline or when the hub cannot be reached, the cached snapshot is used."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub import constants

    name, revision = split(model)
    online_error = None
    if not constants.HF_HUB_OFFLINE:
        try:
            info = HfApi().model_info(name, revision=revision)
            files = [s.rfilename for s in info.siblings or []]
            ignore = _IGNORE + (["*.bin"] if any(f.endswith(".safetensors") for f in files) else [])
            folder = snapshot_download(name, revision=info.sha, ignore_patterns=ignore)
            return folder, info.sha
        except Exception as e:  # noqa: BLE001 - no network, gated, unknown: try the cache, then say both
            online_error = e
    try:
        folder = snapshot_download(name, revision=revision, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        why = f"not on the hub ({online_error}); " if online_error else ""
        raise FileNotFoundError(
            f"hub model {model!r}: {why}not in the Hugging Face cache either ({e}). Download it with "
            f"`huggingface-cli download {name}{f' --revision {revision}' if revision else ''}` where the hub "
            "is reachable (same HF_HOME), or set the model to a local folder") from e
    return folder, Path(folder).name


def resolve_settings(settings, found: dict | None = None):
    """``settings`` with every hub model a stage loads replaced by its snapshot folder, and
    {model: {"repo", "revision", "commit"}}.  Generator specs of the openai backend are
    served by their API and left alone."""
    found = {} if found is None else found
    if isinstance(settings, list):
        return [resolve_settings(v, found)[0] for v in settings], found
    if not isinstance(settings, dict):
        return settings, found
    out = {}
    for key, value in settings.items():
        if key in _MODEL_KEYS and settings.get("backend") != "openai" and is_hub_model(value):
            if value not in found:
                folder, commit = snapshot(value)
                name, revision = split(value)
                found[value] = {"repo": name, "revision": revision, "commit": commit, "folder": folder}
            out[key] = found[value]["folder"]
        else:
            out[key] = resolve_settings(value, found)[0]
    return out, found


def record(folder: str | Path, models: dict) -> None:
    """Write what a job loaded (``resolve_settings``' second value) to ``folder/hub_models.json``."""
    rows = {m: {k: v for k, v in info.items() if k != "folder"} for m, info in models.items()}
    (Path(folder) / RECORD).write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def recorded_revisions(stage_dirs: list[str]) -> dict[str, dict]:
    """{hub model: {"revision": pinned or None, "commits": [...], "stages": [...]}} from the
    ``hub_models.json`` of the given stage folders (the results' provenance).  More than one
    commit for a model means the hub moved while an unpinned run was running."""
    out: dict[str, dict] = {}
    for folder in stage_dirs:
        path = Path(folder) / RECORD
        if not path.is_file():
            continue
        for model, info in json.loads(path.read_text(encoding="utf-8")).items():
            entry = out.setdefault(info["repo"], {"revision": info.get("revision"), "commits": [], "stages": []})
            if info["commit"] not in entry["commits"]:
                entry["commits"].append(info["commit"])
            entry["stages"].append(str(folder))
    return out
