"""Resumable progress of long LLM stages: an append-only ledger checked against a fingerprint.

Long stages keep their progress in ``<stage folder>/progress/`` (``progress_dir``),
which Snakemake does not own: if a job is interrupted or fails, Snakemake removes
its declared outputs but the progress survives, and the rerun asks only for what
is missing; the declared output is written at the end.  As in
starcoder2-self-align's ``self_ossinstruct.py``, each finished unit of work is
one JSON line of a ledger, valid only under the fingerprint of what determines
it (model, prompt, sampling) kept beside it::

    ledger = Ledger(progress_path(out))
    done = ledger.resume(fingerprint, {"args": args})   # [] under another fingerprint
    ...
    ledger.append(entries)                               # after each batch
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from scoder.io import append_jsonl, read_json, write_json, write_jsonl


def progress_dir(out_path: str | os.PathLike) -> Path:
    """The progress folder of the stage that writes ``out_path``."""
    return Path(out_path).parent / "progress"


def progress_path(out_path: str | os.PathLike) -> Path:
    """Where the progress towards ``out_path`` is kept (same name, in the progress folder)."""
    return progress_dir(out_path) / Path(out_path).name


def read_entries(path: str | os.PathLike) -> list[dict]:
    """A ledger's entries; a torn last line (killed mid-append) and what follows it are dropped."""
    entries = []
    path = Path(path)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return entries


class Ledger:
    """Entries at ``path`` (JSON lines), valid under the fingerprint stored at ``fingerprint_path``
    (default: ``path`` with the suffix ``.fingerprint.json``)."""

    def __init__(self, path: str | os.PathLike, fingerprint_path: str | os.PathLike | None = None):
        self.path = Path(path)
        self.fingerprint_path = Path(fingerprint_path or self.path.with_suffix(".fingerprint.json"))

    def resume(self, fingerprint: str, about: dict | None = None,
               keep: Callable[[dict], bool] | None = None) -> list[dict]:
        """The entries written under ``fingerprint`` that ``keep`` accepts ([] under another
        fingerprint).  The ledger is rewritten to exactly these, so appends start on a line
        of their own; ``about`` is stored with the fingerprint (what it digests)."""
        stored = read_json(self.fingerprint_path) if self.fingerprint_path.exists() else None
        same = stored is not None and stored.get("fingerprint") == fingerprint
        entries = read_entries(self.path) if same else []
        if keep is not None:
            entries = [e for e in entries if keep(e)]
        write_json(self.fingerprint_path, {"fingerprint": fingerprint, **(about or {})})
        write_jsonl(self.path, entries)
        return entries

    def append(self, entries: Iterable[dict]) -> None:
        """Record finished work (flushed to disk before returning)."""
        append_jsonl(self.path, entries)
