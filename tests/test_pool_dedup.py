"""Near-dedup: near copies collapse to one, different functions stay, and the fast
signatures give exactly the straightforward datasketch decisions."""
import random
import sysconfig
from pathlib import Path

import numpy as np
from datasketch import MinHash

import scoder.pool.dedup as dedup_module
from scoder.pool.dedup import dedup, dedup_reference, minhash_signatures, shingles
from scoder.pool.extract import extract_functions

MEAN = '''def mean(values):
    """Arithmetic mean of a non-empty list of numbers."""
    total = 0
    count = 0
    for value in values:
        total += value
        count += 1
    if count == 0:
        raise ValueError("mean of an empty list")
    return total / count
'''
FIB = '''def fib(n):
    """The n-th Fibonacci number, iteratively."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


def test_near_copy_dropped_different_kept():
    records = [
        {"id": "mean", "code": MEAN},
        {"id": "fib", "code": FIB},
        {"id": "mean2", "code": MEAN.replace("raise ValueError", "raise ZeroDivisionError")},
    ]
    kept, dropped = dedup(records)
    assert [r["id"] for r in kept] == ["mean", "fib"]
    assert [(r["id"], r["duplicate_of"]) for r in dropped] == [("mean2", "mean")]


def test_signatures_equal_minhash_updates():
    codes = [MEAN, FIB, "", "x = 1"]
    sigs = minhash_signatures(codes, num_perm=64, seed=7)
    for code, sig in zip(codes, sigs):
        m = MinHash(num_perm=64, seed=7)
        for s in shingles(code):
            m.update(s)
        assert np.array_equal(m.hashvalues, sig)


def _corpus():
    """~250 real functions plus ~90 edited copies of some of them (near duplicates)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    records, _, _ = extract_functions([{"type": "tree", "path": str(root / d)} for d in ("email", "json")])
    rng = random.Random(0)
    copies = []
    for r in rng.sample(records, 90):
        lines = r["code"].splitlines()
        k = rng.randrange(len(lines))
        lines[k] = lines[k] + "  # edited"
        copies.append({**r, "id": r["id"] + ":copy", "code": "\n".join(lines)})
    mixed = records + copies
    rng.shuffle(mixed)
    return mixed


def test_fast_equals_straightforward(monkeypatch):
    records = _corpus()
    kept, dropped = dedup(records)
    ref_kept, ref_dropped = dedup_reference(records)
    assert [r["id"] for r in kept] == [r["id"] for r in ref_kept]
    assert [(r["id"], r["duplicate_of"]) for r in dropped] == [(r["id"], r["duplicate_of"]) for r in ref_dropped]
    assert len(dropped) >= 60  # the edited copies are found
    # hashing in worker processes, several chunks each, changes nothing
    monkeypatch.setattr(dedup_module, "CHUNK_FUNCTIONS", 100)
    kept2, _ = dedup(records, workers=2)
    assert [r["id"] for r in kept2] == [r["id"] for r in kept]


def test_exact_copies_hashed_once_and_matched_to_the_first_kept():
    records = [
        {"id": "fib", "code": FIB},
        {"id": "mean", "code": MEAN},
        {"id": "fib-copy", "code": FIB},
        {"id": "mean-edit", "code": MEAN.replace("count += 1", "count = count + 1")},
        {"id": "mean-copy", "code": MEAN},
    ]
    sigs = minhash_signatures([r["code"] for r in records])
    assert np.array_equal(sigs[0], sigs[2]) and np.array_equal(sigs[1], sigs[4])
    kept, dropped = dedup(records)
    assert [r["id"] for r in kept] == ["fib", "mean"]
    assert [(r["id"], r["duplicate_of"]) for r in dropped] == [
        ("fib-copy", "fib"), ("mean-edit", "mean"), ("mean-copy", "mean")]
    ref_kept, ref_dropped = dedup_reference(records)
    assert [r["id"] for r in ref_kept] == ["fib", "mean"] and ref_dropped == dropped


def test_bad_text_is_a_counted_skip_and_changes_no_decision(tmp_path):
    """Lone surrogates (anywhere in a record), a missing or non-string ``code``: each is
    skipped with its reason, the valid records dedup exactly as without them, and
    everything can still be written."""
    from scoder.io import read_jsonl, write_jsonl
    from scoder.pool.dedup import skip_counts
    valid = [{"id": "mean", "code": MEAN}, {"id": "fib", "code": FIB},
             {"id": "mean2", "code": MEAN.replace("raise ValueError", "raise ZeroDivisionError")}]
    bad = [{"id": "sur", "code": FIB + "# \ud800\n"},
           {"id": "sur-doc", "code": FIB, "docstring": "lone \udfff", "path": "x.py"},
           {"id": "sur-id-\ud834", "code": MEAN},
           {"id": "no-code", "text": FIB},
           {"id": "none", "code": None},
           {"id": "list", "code": ["def f(): pass"]},
           ["not", "an", "object"]]
    mixed = [bad[0], valid[0], bad[1], bad[2], valid[1], bad[3], bad[4], bad[5], valid[2], bad[6]]
    for fn in (dedup, dedup_reference):
        kept, dropped = fn(mixed)
        ref_kept, ref_dropped = fn(valid)
        assert kept == ref_kept and dropped[:len(ref_dropped)] == ref_dropped
        skipped = dropped[len(ref_dropped):]
        assert [(d["id"], d["skipped"]) for d in skipped] == [
            ("sur", "lone_surrogate"), ("sur-doc", "lone_surrogate"), ("sur-id-\\ud834", "lone_surrogate"),
            ("no-code", "missing_code"), ("none", "code_not_text"), ("list", "code_not_text"),
            (None, "missing_code")]
        assert "docstring" in skipped[1]["detail"] and "NoneType" in skipped[4]["detail"]
        assert skip_counts(dropped) == {"missing_code": 2, "code_not_text": 2, "lone_surrogate": 3}
        write_jsonl(tmp_path / "kept.jsonl", kept)
        write_jsonl(tmp_path / "dropped.jsonl", dropped)
        assert read_jsonl(tmp_path / "dropped.jsonl") == dropped
    assert skip_counts(dedup(valid)[1]) == dict.fromkeys(("missing_code", "code_not_text", "lone_surrogate"), 0)
