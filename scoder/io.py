"""Small file helpers shared by every stage: JSONL records, JSON documents and their digests."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All records of a JSONL file (a missing file is an error, an empty one is [])."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (temp file + rename); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records and flush, so an interrupted stage keeps what it finished."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path: str | os.PathLike, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def digest(obj, length: int | None = None, **dumps) -> str:
    """sha256 (hex) of ``obj`` as JSON with sorted keys, cut to ``length`` characters; ``dumps``
    passes further ``json.dumps`` options (or ``sort_keys=False``) where a stored digest needs them."""
    blob = json.dumps(obj, **{"sort_keys": True, **dumps})
    value = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    return value[:length] if length else value
