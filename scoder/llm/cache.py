"""Persistent response cache: one JSON file per request under a directory.

A file per key (written to a temp name, then renamed) needs no locking, so
several Snakemake jobs — or nodes sharing a network file system — can share
one cache, and an interrupted run never leaves a half-written entry.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from scoder.io import digest


def request_key(request: dict) -> str:
    """sha256 of the canonical JSON of everything that determines a response."""
    return digest(request, ensure_ascii=False, separators=(",", ":"))


class ResponseCache:
    """``get``/``put`` of JSON values by key; ``root=None`` caches nothing."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root) if root else None

    def _path(self, key: str) -> Path:
        # Two-character shards keep directories small at 10^5 entries.
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str):
        if self.root is None:
            return None
        try:
            with open(self._path(key), encoding="utf-8") as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
        os.replace(tmp, path)
