"""Extract Python functions that have a docstring (SCoder Appendix A, "Code Snippet Extraction").

Sources, each a dict:

- ``{"type": "stdlib"}``: the running CPython's standard library;
- ``{"type": "tree", "path": DIR, "name": LABEL}``: the ``.py`` files of a local tree
  (in both, test directories and ``site-packages`` are skipped, see ``SKIP_DIRS``);
- ``{"type": "stack", "path": FILE_OR_GLOB}``: The Stack v1 parquet or JSONL files
  with a ``content`` column (repository and path metadata are kept when present).

Module-level functions and methods (also of nested classes) are kept; functions nested
in functions are not, since they depend on their enclosing scope. Each record carries
what the filter needs to make the function stand alone: its file's ``__future__``
imports, module-level imports (relative ones resolved, type-checking-only ones left
out), the module constants and other module-level names it reads, and the file's module
name (see :mod:`scoder.pool.context`).

Every file (a Stack row counts as a file) or function that is not kept is counted under
a skip reason in the returned stats (``STAT_KEYS``) and listed in the returned skip log
(``{"reason", "source", "path", ...}`` per file, row or function): ``non_utf8``,
``syntax_error`` (does not parse), ``too_large`` (over ``max_file_bytes``), ``empty``,
``read_error``, ``bad_row`` (a Stack row that is not a JSON object or whose content is
not text), ``not_python``, ``nested_function``, ``no_docstring``, ``sampled_out`` (left
out by ``limit``). Bad input never stops the run; a source that does not exist does,
with an error naming its setting (``pool.sources[i].path``).

``source_fingerprint`` digests what a source's files are (a tree's by content): it is
part of the extract stage's key, so a source file added, edited or removed gives extract
and every stage after it new folders, and only they run.

    from scoder.pool.extract import extract_functions
    records, stats, skipped = extract_functions([{"type": "stdlib"}], limit=200)
"""
from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import random
import sysconfig
import warnings
from collections import Counter
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Iterator

from scoder.io import digest

from .context import function_context, module_context, module_name

# Directories never read: tests of the stdlib/packages are not "code snippets", and
# site-packages is a source of its own (a "tree").
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"})

# Work items (files or Stack rows) per task when parsing in worker processes.
CHUNK_ITEMS = 64

# Metadata column names of The Stack v1 (dedup), first match wins.
STACK_REPO_COLUMNS = ("max_stars_repo_name", "repository_name", "repo_name", "repo")
STACK_PATH_COLUMNS = ("max_stars_repo_path", "path")

# Why a file (a Stack row counts as one) or a function was not kept: the skip log's reasons.
FILE_SKIPS = ("non_utf8", "syntax_error", "too_large", "empty", "read_error", "bad_row", "not_python")
FUNCTION_SKIPS = ("nested_function", "no_docstring", "sampled_out")
SKIP_REASONS = FILE_SKIPS + FUNCTION_SKIPS
# Every stats key, reported even when zero: files and rows, then functions.
STAT_KEYS = (
    "files_seen", "files_parsed", *FILE_SKIPS,
    "functions_seen", "nested_function", "no_docstring", "functions_extracted", "sampled_out", "functions_kept",
)


def _walk_py(root: Path) -> Iterator[Path]:
    """``.py`` files under root in sorted order, skipping SKIP_DIRS and hidden dirs."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield Path(dirpath) / f


# Fields that hold statements, in ``_fields`` order: only statements define functions.
_BODIES = ("body", "handlers", "orelse", "finalbody", "cases")


def _functions(tree: ast.Module) -> Iterator[tuple[ast.AST, str, bool]]:
    """(node, qualname, nested_in_function) for every function definition, in source order."""
    stack: list[tuple[ast.AST, str, bool]] = [(tree, "", False)]
    while stack:
        node, prefix, in_func = stack.pop()
        children = []
        for field in _BODIES:
            for child in getattr(node, field, ()):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        yield child, qual, in_func
                    children.append((child, qual + ".", in_func or not isinstance(child, ast.ClassDef)))
                elif isinstance(child, ast.AST):
                    children.append((child, prefix, in_func))
        stack.extend(reversed(children))


def _function_code(lines: list[str], node: ast.AST) -> str:
    """Source of a function with its decorators, indentation removed.

    What ``ast.get_source_segment(padded=True)`` + dedent give, from lines split once
    per file (get_source_segment re-splits the whole file on every call: quadratic).
    Only the def line's indentation is removed, and only where a line starts with it,
    so continuation lines of multi-line strings at a lower indentation stay valid."""
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    seg = lines[start - 1:node.end_lineno]
    # the last line may go on after the function (`return x; y = 1`): cut at end_col_offset (bytes)
    seg[-1] = seg[-1].encode("utf-8")[:node.end_col_offset].decode("utf-8", "replace")
    first = seg[0]
    indent = first[:len(first) - len(first.lstrip(" \t"))]
    return "".join(line[len(indent):] if line.startswith(indent) else line for line in seg).rstrip() + "\n"


def _skip(skipped: list[dict], stats: Counter, reason: str, where: dict, **detail) -> None:
    """Count a skipped file, row or function under ``reason`` and list it in the skip log."""
    stats[reason] += 1
    skipped.append({"reason": reason, **where, **detail})


def _parse_file(text: str, *, source: str, repo: str, path: str, id_path: str, stats: Counter,
                skipped: list[dict], where: dict, module: str | None = None, import_root: str | None = None,
                is_init: bool = False) -> list[dict]:
    """Snippet records of one file's text; problems are counted and logged, never raised.
    ``module``: the file's dotted name (relative imports are resolved inside its package)."""
    if not text.strip():
        _skip(skipped, stats, "empty", where)
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old code
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        # ValueError: null bytes in the source (Python 3.11).
        detail = f"line {e.lineno}: {e.msg}" if isinstance(e, SyntaxError) else type(e).__name__
        _skip(skipped, stats, "syntax_error", where, detail=detail)
        return []
    stats["files_parsed"] += 1
    lines = io.StringIO(text, newline="").readlines()  # \n, \r\n, \r only: ast's own line numbering
    try:
        ctx = module_context(tree, lines, module=module, is_init=is_init)
    except RecursionError:
        _skip(skipped, stats, "syntax_error", where, detail="nested too deeply")
        return []
    out = []
    for node, qualname, nested in _functions(tree):
        stats["functions_seen"] += 1
        if nested:
            _skip(skipped, stats, "nested_function", where, qualname=qualname, lineno=node.lineno)
            continue
        docstring = ast.get_docstring(node)
        if not docstring or not docstring.strip():
            _skip(skipped, stats, "no_docstring", where, qualname=qualname, lineno=node.lineno)
            continue
        code = _function_code(lines, node)
        out.append({
            "id": f"{source}:{id_path}:{qualname}:{node.lineno}",
            "name": node.name,
            "qualname": qualname,
            "code": code,
            "docstring": docstring,
            "source": source,
            "repo": repo,
            "path": path,
            "lineno": node.lineno,
            "module": module,
            "import_root": import_root,
            **function_context(ctx, node),
        })
    return out


def _read_text(file: Path, max_file_bytes: int, stats: Counter, skipped: list[dict], where: dict) -> str | None:
    try:
        if file.stat().st_size > max_file_bytes:
            _skip(skipped, stats, "too_large", where)
            return None
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        _skip(skipped, stats, "non_utf8", where, detail=f"byte {e.start}")
    except OSError as e:
        _skip(skipped, stats, "read_error", where, detail=str(e))
    return None


def _tree_items(root: Path, *, source: str, repo: str) -> Iterator[tuple]:
    for file in _walk_py(root):
        rel = file.relative_to(root).as_posix()
        yield ("file", str(file), source, repo, rel)


def _parse_items(items: list[tuple], max_file_bytes: int) -> tuple[list[dict], Counter, list[dict]]:
    """Records, stats and skip log of work items: ``("file", path, source, repo, rel)``
    (read here, counted as a file seen) or ``("text", content, source, repo, path, id_path, where)``."""
    stats: Counter = Counter()
    out: list[dict] = []
    skipped: list[dict] = []
    for item in items:
        if item[0] == "file":
            _, file, source, repo, rel = item
            stats["files_seen"] += 1
            where = {"source": source, "path": rel}
            text = _read_text(Path(file), max_file_bytes, stats, skipped, where)
            if text is not None:
                module, root = module_name(Path(file))
                out += _parse_file(text, source=source, repo=repo, path=rel, id_path=rel, stats=stats,
                                   skipped=skipped, where=where, module=module, import_root=root,
                                   is_init=Path(file).name == "__init__.py")
        else:
            _, text, source, repo, path, id_path, where = item
            out += _parse_file(text, source=source, repo=repo, path=path, id_path=id_path, stats=stats,
                               skipped=skipped, where=where)
    return out, stats, skipped


def _chunks(items: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _records(items: Iterator[tuple], *, max_file_bytes: int, workers: int, stats: Counter,
             skipped: list[dict]) -> list[dict]:
    """Parse work items in order, in ``workers`` processes when more than one."""
    out: list[dict] = []
    parse = partial(_parse_items, max_file_bytes=max_file_bytes)
    chunks = _chunks(items, CHUNK_ITEMS)
    if workers <= 1:
        for recs, st, sk in map(parse, chunks):
            out += recs
            stats.update(st)
            skipped += sk
        return out
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        # the items are drawn here, in this thread (Stack rows update stats as they are read),
        # a few chunks per worker at a time to bound memory
        while batch := list(islice(chunks, 4 * workers)):
            for recs, st, sk in pool.map(parse, batch):
                out += recs
                stats.update(st)
                skipped += sk
    return out


def _stack_rows(file: str, stats: Counter, skipped: list[dict]) -> Iterator[tuple[int, dict]]:
    """(row number, row) of a Stack parquet or JSONL(.gz) file, streamed to bound memory. A
    JSONL line that is not UTF-8 is counted (as a file seen) under ``non_utf8``, one that is
    not a JSON object under ``bad_row``; a file that stops being readable adds a
    ``read_error`` and a warning naming it."""
    i = -1
    try:
        if file.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            with (gzip.open if file.endswith(".gz") else open)(file, "rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    i += 1
                    where = {"source": "stack", "shard": file, "row": i}
                    try:
                        text = line.decode("utf-8")
                    except UnicodeDecodeError:
                        stats["files_seen"] += 1
                        _skip(skipped, stats, "non_utf8", where)
                        continue
                    try:
                        row = json.loads(text)
                    except (ValueError, RecursionError):
                        row = None
                    if isinstance(row, dict):
                        yield i, row
                    else:
                        stats["files_seen"] += 1
                        _skip(skipped, stats, "bad_row", where, detail="not a JSON object")
            return
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(file)
        wanted = {"content", "ext", "lang", *STACK_REPO_COLUMNS, *STACK_PATH_COLUMNS}
        columns = [c for c in pf.schema_arrow.names if c in wanted]
        for batch in pf.iter_batches(batch_size=1000, columns=columns):
            for row in batch.to_pylist():
                i += 1
                yield i, row
    except (OSError, EOFError, ValueError) as e:  # ArrowInvalid: ValueError; BadGzipFile: OSError
        _skip(skipped, stats, "read_error", {"source": "stack", "shard": file, "row": i + 1},
              detail=f"skipped the rest of the file: {e}")
        warnings.warn(f"skipped the rest of {file}: {e}", stacklevel=2)


def _first(row: dict, columns: tuple[str, ...]) -> str | None:
    for c in columns:
        if row.get(c):
            return str(row[c])
    return None


def _stack_items(pattern: str, *, max_file_bytes: int, stats: Counter, skipped: list[dict]) -> Iterator[tuple]:
    """Work items of Stack rows; the cheap checks (language, encoding, size) are done here."""
    for file in sorted(glob.glob(pattern)):
        for i, row in _stack_rows(file, stats, skipped):
            stats["files_seen"] += 1
            repo = _first(row, STACK_REPO_COLUMNS) or Path(file).name
            path = _first(row, STACK_PATH_COLUMNS) or f"row{i}"
            where = {"source": "stack", "shard": file, "row": i, "repo": repo, "path": path}
            content = row.get("content")
            if row.get("ext") not in (None, "py") or row.get("lang") not in (None, "Python"):
                _skip(skipped, stats, "not_python", where)
                continue
            if content is None or content == b"":
                _skip(skipped, stats, "empty", where)
                continue
            if isinstance(content, str):
                try:
                    raw = content.encode("utf-8")  # lone surrogates from JSON escapes fail here
                except UnicodeEncodeError:
                    _skip(skipped, stats, "non_utf8", where, detail="lone surrogate")
                    continue
            elif isinstance(content, bytes):
                raw = content
            else:
                _skip(skipped, stats, "bad_row", where, detail=f"content is {type(content).__name__}")
                continue
            if len(raw) > max_file_bytes:
                _skip(skipped, stats, "too_large", where)
                continue
            if isinstance(content, bytes):
                try:
                    content = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    _skip(skipped, stats, "non_utf8", where, detail=f"byte {e.start}")
                    continue
            # the repository goes into the id: paths alone repeat across repositories
            yield ("text", content, "stack", repo, path, f"{repo}/{path}", where)


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(src: dict) -> list[Path]:
    """The files one source reads: the ``.py`` files of a tree (or of the stdlib), the shards a
    Stack source's glob matches (none where the path points nowhere)."""
    if src["type"] == "stack":
        return [Path(f) for f in sorted(glob.glob(str(src["path"])))]
    return list(_walk_py(_stdlib() if src["type"] == "stdlib" else Path(src["path"])))


def _file_sha256(file: Path) -> str | None:
    try:
        with open(file, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:  # gone since the listing, or unreadable: extract logs it as a read_error
        return None


def _file_stat(file: Path) -> tuple[int, int] | None:
    try:
        st = file.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None


def source_fingerprint(src: dict) -> str:
    """What one source's files are, in a line (``tree src: 17 files, <digest>``): a tree's (or the
    stdlib's) files by their path under the tree and their content, so a file added, edited or
    removed changes it and a file touched, or the tree on another machine, does not; a Stack
    source's shards by path, size and modification time (hundreds of GB are not read to plan a
    run). A source that points nowhere lists no files."""
    files = source_files(src)
    if src["type"] == "stack":
        listing = [(str(f), _file_stat(f)) for f in files]
    else:
        root = _stdlib() if src["type"] == "stdlib" else Path(src["path"])
        listing = [(f.relative_to(root).as_posix(), _file_sha256(f)) for f in files]
    name = f"{src['type']} {src['path']}" if "path" in src else src["type"]  # not the stdlib's: it varies by machine
    return f"{name}: {len(listing)} files, {digest(listing, 16)}"


def source_problems(sources: list[dict], setting: str = "pool.sources") -> list[str]:
    """What is wrong with each source, one message per problem naming its setting
    (``pool.sources[1].path: ... is not a directory``); empty when every source can be read.
    The config's schema checks the settings' form; this checks the files (a pre-run check:
    a dry run of a paper run lays out its DAG without the data)."""
    problems = []
    for i, src in enumerate(sources):
        kind, path = src.get("type"), src.get("path")
        if kind not in ("stdlib", "tree", "stack"):
            problems.append(f"{setting}[{i}].type: unknown source type {kind!r} (stdlib, tree or stack)")
        elif kind != "stdlib" and not path:
            problems.append(f"{setting}[{i}].path: missing; a {kind} source reads "
                            + ("a folder of .py files" if kind == "tree" else "parquet or JSONL files (a glob)"))
        elif kind == "tree" and not Path(path).is_dir():
            problems.append(f"{setting}[{i}].path: tree source {path} is not a directory")
        elif kind == "stack" and not glob.glob(str(path)):
            problems.append(f"{setting}[{i}].path: stack source {path!r} matches no file (parquet or JSONL "
                            "files with a 'content' column)")
    return problems


def extract_functions(
    sources: list[dict], *, max_file_bytes: int = 1_000_000, limit: int | None = None, seed: int = 0,
    workers: int = 1,
) -> tuple[list[dict], dict, list[dict]]:
    """(records, stats, skip log): Python functions with a docstring from every source, the
    counts of what was seen and skipped, and every skipped file, row or function with its
    reason. With ``limit``, a seeded random sample in source order (the rest is logged as
    ``sampled_out``). ``workers`` processes parse files (the result does not depend on it)."""
    problems = source_problems(sources)
    if problems:  # before any work: not after an hour of parsing the first source
        raise FileNotFoundError("; ".join(problems))
    stats: Counter = Counter(dict.fromkeys(STAT_KEYS, 0))
    records: list[dict] = []
    skipped: list[dict] = []
    for src in sources:
        if src["type"] == "stdlib":
            items = _tree_items(_stdlib(), source="stdlib", repo="cpython-stdlib")
        elif src["type"] == "tree":
            label = src.get("name") or Path(src["path"]).name
            items = _tree_items(Path(src["path"]), source=label, repo=label)
        else:
            items = _stack_items(str(src["path"]), max_file_bytes=max_file_bytes, stats=stats, skipped=skipped)
        records += _records(items, max_file_bytes=max_file_bytes, workers=workers, stats=stats, skipped=skipped)
    stats["functions_extracted"] = len(records)
    if limit is not None and limit < len(records):
        keep = set(random.Random(seed).sample(range(len(records)), limit))
        stats["sampled_out"] = len(records) - limit
        skipped += [{"reason": "sampled_out", "id": r["id"]} for i, r in enumerate(records) if i not in keep]
        records = [r for i, r in enumerate(records) if i in keep]
    stats["functions_kept"] = len(records)
    return records, dict(stats), skipped
