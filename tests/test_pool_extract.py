"""Extraction: functions with docstrings from trees, Stack files and the stdlib; every skip counted."""
import ast
import gzip
import json
import os
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

from scoder.pool.extract import extract_functions, source_fingerprint, source_problems

GOOD = '''import math
from collections import OrderedDict as OD


def area(r):
    """Area of a circle."""
    return math.pi * r * r


def undocumented(x):
    return x


class Shape:
    @staticmethod
    def sides(n):
        """Number of sides."""
        def inner():
            """Nested functions are not snippets."""
            return n
        return inner()
'''


def _tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text(GOOD)
    (tmp_path / "pkg" / "latin1.py").write_bytes('def f():\n    """caf\xe9"""\n    return 1\n'.encode("latin-1"))
    (tmp_path / "pkg" / "broken.py").write_text('def f(:\n    """doc"""\n')
    (tmp_path / "pkg" / "empty.py").write_text("")
    (tmp_path / "pkg" / "tests").mkdir()
    (tmp_path / "pkg" / "tests" / "test_x.py").write_text('def test():\n    """skipped dir"""\n    return 1\n')
    return tmp_path / "pkg"


def test_tree_records_and_skip_counts(tmp_path):
    records, stats, skipped = extract_functions([{"type": "tree", "path": str(_tree(tmp_path)), "name": "mytree"}])
    assert [r["qualname"] for r in records] == ["area", "Shape.sides"]
    area, sides = records
    assert area["id"] == "mytree:good.py:area:5"
    assert area["docstring"] == "Area of a circle."
    assert area["code"].startswith("def area(r):") and area["lineno"] == 5
    assert "import math" in area["module_imports"]
    assert "from collections import OrderedDict as OD" in area["module_imports"]
    # methods come out dedented, decorators kept, and parse on their own
    assert sides["code"].startswith("@staticmethod\ndef sides(n):")
    ast.parse(sides["code"])
    assert stats["non_utf8"] == 1 and stats["syntax_error"] == 1 and stats["empty"] == 1
    assert stats["no_docstring"] == 1 and stats["nested_function"] == 1
    assert stats["files_seen"] == 4  # tests/ is not read
    assert stats["functions_kept"] == 2
    # the skip log lists each skipped file and function with its reason
    assert _log_counts(skipped) == {k: v for k, v in stats.items() if k in _LOGGED and v}
    assert {(e["reason"], e["path"], e.get("qualname")) for e in skipped} == {
        ("non_utf8", "latin1.py", None), ("syntax_error", "broken.py", None), ("empty", "empty.py", None),
        ("no_docstring", "good.py", "undocumented"), ("nested_function", "good.py", "Shape.sides.inner")}
    assert next(e for e in skipped if e["reason"] == "syntax_error")["detail"].startswith("line 1:")


_LOGGED = ("non_utf8", "syntax_error", "too_large", "empty", "read_error", "bad_row", "not_python",
           "nested_function", "no_docstring", "sampled_out")


def _log_counts(skipped):
    counts = {}
    for e in skipped:
        counts[e["reason"]] = counts.get(e["reason"], 0) + 1
    return counts


def test_too_large_files_are_counted(tmp_path):
    _, stats, _ = extract_functions([{"type": "tree", "path": str(_tree(tmp_path))}], max_file_bytes=100)
    assert stats["too_large"] == 1 and stats["functions_kept"] == 0  # good.py


def test_stack_parquet_and_jsonl_keep_metadata(tmp_path):
    code = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'
    pd.DataFrame({
        "content": [code, "def broken(:\n"],
        "max_stars_repo_name": ["alice/calc", "bob/x"],
        "max_stars_repo_path": ["calc/ops.py", "x.py"],
    }).to_parquet(tmp_path / "part-0.parquet")
    with open(tmp_path / "part-1.jsonl", "w") as f:
        f.write(json.dumps({"content": code.replace("add", "plus"), "repository_name": "carol/m", "path": "m.py"}) + "\n")
    with gzip.open(tmp_path / "part-2.jsonl.gz", "wt") as f:
        f.write(json.dumps({"content": code.replace("add", "sum2")}) + "\n")
    records, stats, _ = extract_functions([
        {"type": "stack", "path": str(tmp_path / "*.parquet")},
        {"type": "stack", "path": str(tmp_path / "part-[12].jsonl*")},
    ])
    assert [(r["repo"], r["path"], r["name"]) for r in records] == [
        ("alice/calc", "calc/ops.py", "add"), ("carol/m", "m.py", "plus"), ("part-2.jsonl.gz", "row0", "sum2")]
    assert records[0]["id"] == "stack:alice/calc/calc/ops.py:add:1"
    assert stats["syntax_error"] == 1 and stats["files_seen"] == 4


def test_stdlib_source():
    records, stats, _ = extract_functions([{"type": "stdlib"}])
    assert len(records) > 3000 and stats["syntax_error"] == 0
    assert any(r["id"].startswith("stdlib:json/decoder.py:") for r in records)
    assert not any(part in ("test", "tests") for r in records for part in r["path"].split("/"))


def test_limit_is_a_seeded_sample_in_source_order():
    source = [{"type": "tree", "path": str(Path(sysconfig.get_paths()["stdlib"]) / "email")}]
    full, _, _ = extract_functions(source)
    a, stats, skipped = extract_functions(source, limit=50, seed=3)
    b, _, _ = extract_functions(source, limit=50, seed=3)
    c, _, _ = extract_functions(source, limit=50, seed=4)
    assert [r["id"] for r in a] != [r["id"] for r in c]
    order = {r["id"]: i for i, r in enumerate(full)}
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len(a) == 50 and stats["sampled_out"] == len(full) - 50
    assert [order[r["id"]] for r in a] == sorted(order[r["id"]] for r in a)
    sampled_out = [e["id"] for e in skipped if e["reason"] == "sampled_out"]
    assert len(sampled_out) == len(full) - 50 and not set(sampled_out) & {r["id"] for r in a}


def test_stack_bad_rows_counted_by_reason_never_a_crash(tmp_path):
    code = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'
    lines = [
        json.dumps({"content": code, "max_stars_repo_name": "a/b", "max_stars_repo_path": "ok.py"}).encode(),
        b'{"content": "def f():\\n    \\"\\"\\"caf\xe9\\"\\"\\"\\n    return 1\\n"}',  # latin-1 byte: not UTF-8
        json.dumps({"content": 'def g():\n    """x\ud800"""\n    return 1\n'}).encode(),  # lone surrogate
        b'{"content": "def h(): return 1"',  # truncated JSON
        b'["not", "an", "object"]',
        json.dumps({"content": 42}).encode(),
        json.dumps({"content": ""}).encode(),
        json.dumps({"content": None}).encode(),
        json.dumps({"content": "def broken(:\n"}).encode(),
        json.dumps({"content": "x = 1\n" * 400}).encode(),  # 2,400 bytes: too large below
        json.dumps({"content": code, "ext": "js"}).encode(),
    ]
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    pd.DataFrame({"content": [code.encode(), b"\xff\xfe bad", b""],
                  "max_stars_repo_name": ["c/d", "e/f", "g/h"], "max_stars_repo_path": ["p.py", "q.py", "r.py"],
                  }).to_parquet(tmp_path / "bytes.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not really parquet")
    with gzip.open(tmp_path / "cut.jsonl.gz", "wb") as f:
        f.write((json.dumps({"content": code}) + "\n").encode() * 200)
    cut = (tmp_path / "cut.jsonl.gz").read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(cut[: len(cut) // 2])  # truncated gzip stream
    with pytest.warns(UserWarning, match="skipped the rest of"):
        records, stats, skipped = extract_functions([{"type": "stack", "path": str(tmp_path / "*")}],
                                                    max_file_bytes=2000)
    assert [(r["repo"], r["path"]) for r in records if r["source"] == "stack" and r["repo"] != "cut.jsonl.gz"] == [
        ("c/d", "p.py"), ("a/b", "ok.py")]
    assert stats["non_utf8"] == 3 and stats["bad_row"] == 3 and stats["empty"] == 3
    assert stats["syntax_error"] == 1 and stats["too_large"] == 1 and stats["not_python"] == 1
    assert stats["read_error"] == 2  # the corrupt parquet file, the cut gzip stream
    reasons = ("files_parsed", "non_utf8", "syntax_error", "too_large", "empty", "bad_row", "not_python")
    assert stats["files_seen"] == sum(stats[k] for k in reasons)  # every row accounted for
    assert _log_counts(skipped) == {k: v for k, v in stats.items() if k in _LOGGED and v}
    shard = next(e for e in skipped if e["reason"] == "not_python")
    assert shard["shard"].endswith("rows.jsonl") and shard["row"] == 10


def test_missing_sources_name_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        extract_functions([{"type": "stack", "path": str(tmp_path / "*.parquet")}])
    with pytest.raises(FileNotFoundError, match=r"pool\.sources\[0\]\.path: .* not a directory"):
        extract_functions([{"type": "tree", "path": str(tmp_path / "nowhere")}])
    with pytest.raises(FileNotFoundError, match=r"pool\.sources\[0\]\.type: unknown source type"):
        extract_functions([{"type": "github"}])
    with pytest.raises(FileNotFoundError, match=r"pool\.sources\[1\]\.path: missing; a tree source"):
        extract_functions([{"type": "stdlib"}, {"type": "tree"}])
    # every problem at once, each naming its setting
    assert source_problems([{"type": "stdlib"}, {"type": "tree", "path": str(tmp_path)},
                            {"type": "stack", "path": str(tmp_path / "*.parquet")},
                            {"type": "tree", "path": str(tmp_path / "nowhere")}]) == [
        f"pool.sources[2].path: stack source {str(tmp_path / '*.parquet')!r} matches no file (parquet or JSONL "
        "files with a 'content' column)",
        f"pool.sources[3].path: tree source {tmp_path / 'nowhere'} is not a directory"]


def test_worker_processes_change_nothing(tmp_path, monkeypatch):
    import scoder.pool.extract as extract_module

    code = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'
    pd.DataFrame({"content": [code, "", "def broken(:\n", code.replace("add", "plus")] * 5,
                  "max_stars_repo_name": [f"r/{i}" for i in range(20)]}).to_parquet(tmp_path / "s.parquet")
    sources = [{"type": "tree", "path": str(Path(sysconfig.get_paths()["stdlib"]) / "email")},
               {"type": "tree", "path": str(_tree(tmp_path))}, {"type": "stack", "path": str(tmp_path / "s.parquet")}]
    one = extract_functions(sources)
    monkeypatch.setattr(extract_module, "CHUNK_ITEMS", 3)  # many chunks, several rounds per worker
    two = extract_functions(sources, workers=2)
    assert [r["id"] for r in two[0]] == [r["id"] for r in one[0]] and two[0] == one[0]
    assert two[1] == one[1] and one[1]["syntax_error"] == 6 and one[1]["empty"] >= 6
    assert two[2] == one[2]


def test_fingerprint_follows_what_the_files_extract_reads_are(tmp_path):
    """Part of extract's key: a tree file added, edited or removed changes it, one touched or in a
    folder extract skips does not; a Stack shard added or rewritten changes it."""
    tree = _tree(tmp_path)
    source = {"type": "tree", "path": str(tree)}
    first = source_fingerprint(source)
    assert first == source_fingerprint(source) and first.startswith(f"tree {tree}: 4 files, ")
    good = tree / "good.py"
    text = good.read_text()
    good.write_text(text.replace("Area of a circle", "Area of a disc"))
    assert source_fingerprint(source) != first
    good.write_text(text)
    assert source_fingerprint(source) == first  # the same content again
    os.utime(good, ns=(0, 0))
    (tree / "tests" / "test_y.py").write_text("def test():\n    pass\n")
    assert source_fingerprint(source) == first  # touched; a test folder extract skips
    (tree / "new.py").write_text(text)
    assert source_fingerprint(source).startswith(f"tree {tree}: 5 files, ")
    (tree / "new.py").unlink()
    (tree / "empty.py").unlink()
    assert source_fingerprint(source).startswith(f"tree {tree}: 3 files, ")

    stack = {"type": "stack", "path": str(tmp_path / "*.jsonl")}
    (tmp_path / "s1.jsonl").write_text('{"content": "x = 1"}\n')
    one = source_fingerprint(stack)
    (tmp_path / "s2.jsonl").write_text('{"content": "y = 2"}\n')
    assert ": 2 files, " in source_fingerprint(stack)
    (tmp_path / "s2.jsonl").unlink()
    assert source_fingerprint(stack) == one
    os.utime(tmp_path / "s1.jsonl", ns=(0, 0))  # shards are not read: a rewrite shows in size and time
    assert source_fingerprint(stack) != one
    # a glob matching nothing (a dry run without the data) lists no files; the stdlib's own path stays out
    assert ": 0 files, " in source_fingerprint({"type": "stack", "path": str(tmp_path / "none/*.parquet")})
    assert source_fingerprint({"type": "stdlib"}).startswith("stdlib: ")
