"""Near-deduplication of snippets with MinHash + LSH (SCoder Appendix A; datasketch).

Shingling: a function is the set of its shingles, the n-grams (``ngram`` = 5) of the
whitespace-separated tokens of its code (``str.split()``, so indentation and line
breaks do not count), each n-gram joined by one space and UTF-8 encoded; a function of
at most ``ngram`` tokens is one shingle (all its tokens). Functions are visited in input
order: a function whose MinHash hits a kept function in the ``MinHashLSH`` index
(Jaccard threshold 0.5 in the paper) is dropped as its duplicate (``duplicate_of``, the
earliest such kept function), otherwise it is kept and inserted.

The decisions are those of the straightforward datasketch use (``MinHash(num_perm,
seed)`` updated shingle by shingle, ``MinHashLSH`` query-then-insert, see
:func:`dedup_reference`), computed faster: the signatures of many functions at once
with numpy (the same 32-bit SHA-1 shingle hash ``datasketch.hashfunc.sha1_hash32``, the
same pre-mix and affine permutations ``MinHash(num_perm, seed).permutations``, then one
``minimum.reduceat`` per batch), exact copies hashed once, in ``workers`` processes;
then datasketch's banding with plain dicts as buckets, visited only by the functions
that share a band with another one (see :func:`dedup`). ``bench/pool.py`` checks both
on ~100K functions.

Bad text from outside the extract stage never stops the run: a record without a
``code`` field (``missing_code``), whose ``code`` is not a string (``code_not_text``) or
with a lone surrogate in any of its text (``lone_surrogate``: it cannot be hashed or
written as UTF-8) is skipped, listed in ``dropped`` as ``{"id", "skipped": reason,
"detail"}`` (without its text) and counted by :func:`skip_counts`. The other records
are deduplicated as if it were not there.

    from scoder.pool.dedup import dedup
    kept, dropped = dedup(records, threshold=0.5)
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import chain

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.minhash import _fmix  # the scheme's own pre-mix, so signatures match bit for bit

# Shingles per numpy step: the (num_perm x shingles) buffer stays in cache (4 MiB at
# 128 perms), several times faster than one big temporary.
BATCH_SHINGLES = 8192
# Functions per task when hashing in worker processes.
CHUNK_FUNCTIONS = 4096


SKIP_REASONS = ("missing_code", "code_not_text", "lone_surrogate")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_in(value) -> bool:
    if isinstance(value, str):  # isascii() reads a flag: most text needs no search
        return not value.isascii() and _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(map(_surrogate_in, value)) or any(map(_surrogate_in, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_surrogate_in, value))
    return False


def _bad_text(record: dict) -> tuple[str, str] | None:
    """(skip reason, detail) of a record dedup cannot hash or write, else None."""
    if "code" not in record:
        return "missing_code", f"fields: {sorted(map(str, record))}"
    if not isinstance(record["code"], str):
        return "code_not_text", f"code is {type(record['code']).__name__}"
    field = next((str(k) for k, v in record.items() if _surrogate_in(k) or _surrogate_in(v)), None)
    if field is not None:
        return "lone_surrogate", f"in field {field!r}"
    return None


def _writable(text: str) -> str:
    """``text`` with lone surrogates spelled out, so that it can be written as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _split_bad(records: list) -> tuple[list[dict], list[dict]]:
    """(records to deduplicate, skip entries of the others) in input order."""
    valid, skipped = [], []
    for record in records:
        bad = _bad_text(record) if isinstance(record, dict) else ("missing_code", "not a JSON object")
        if bad is None:
            valid.append(record)
            continue
        rid = record.get("id") if isinstance(record, dict) else None
        skipped.append({"id": _writable(rid) if isinstance(rid, str) else rid, "skipped": bad[0],
                        "detail": _writable(bad[1])})
    return valid, skipped


def skip_counts(dropped: list[dict]) -> dict[str, int]:
    """Skipped records by reason (every reason in ``SKIP_REASONS``, zeros included)."""
    counts = Counter(d["skipped"] for d in dropped if "skipped" in d)
    return {reason: counts[reason] for reason in SKIP_REASONS}


def shingle_list(code: str, ngram: int = 5) -> list[bytes]:
    """A function's shingles in order (repeats included): whitespace-token n-grams of its
    code joined by one space, UTF-8; fewer than ``ngram`` tokens make one shingle."""
    tokens = code.split()
    if len(tokens) <= ngram:
        return [" ".join(tokens).encode("utf-8")]
    return list(map(str.encode, map(" ".join, zip(*[tokens[k:] for k in range(ngram)]))))


def shingles(code: str, ngram: int = 5) -> set[bytes]:
    """The shingle set of a function, what its MinHash summarises."""
    return set(shingle_list(code, ngram))


# ASCII characters str.split() takes for whitespace and bytes.split() does not.
_STR_ONLY_SPACE = re.compile("[\x1c-\x1f]")


def _shingle_digests(code: str, ngram: int) -> list[bytes]:
    """SHA-1 digests of ``shingle_list(code, ngram)``, in order.  ASCII code is split
    as bytes (the same tokens, with no str -> bytes step per shingle)."""
    if code.isascii() and not _STR_ONLY_SPACE.search(code):
        tokens = code.encode("ascii").split()
    else:
        tokens = [t.encode("utf-8") for t in code.split()]
    grams = [b" ".join(tokens)] if len(tokens) <= ngram else map(b" ".join, zip(*[tokens[k:] for k in range(ngram)]))
    sha1 = hashlib.sha1
    return [sha1(g).digest() for g in grams]  # a bound-method call: faster than map + methodcaller


def _signatures(codes: list[str], num_perm: int, seed: int, ngram: int) -> np.ndarray:
    """MinHash signatures (len(codes), num_perm), equal to ``MinHash(num_perm, seed)``
    updated with every shingle."""
    ref = MinHash(num_perm=num_perm, seed=seed)
    if ref.scheme != "affine32":
        raise RuntimeError(f"vectorised MinHash expects datasketch's affine32 scheme, got {ref.scheme}")
    a, b = (p[:, None] for p in ref.permutations)
    # lists, not sets: a repeated shingle changes no minimum
    digests = [_shingle_digests(c, ngram) for c in codes]  # never empty: "" is one shingle
    lengths = np.fromiter(map(len, digests), dtype=np.int64, count=len(digests))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    # datasketch.hashfunc.sha1_hash32: the digest's first 4 bytes, little-endian
    first4 = np.frombuffer(b"".join(chain.from_iterable(digests)), dtype="<u4").reshape(-1, 5)[:, 0]
    hv = _fmix(first4.astype(np.uint32), 32)
    sigs = np.empty((len(codes), num_perm), dtype=np.uint32)
    # permutations x shingles: reducing along contiguous rows is ~10x faster than along columns
    buf = np.empty((num_perm, max(BATCH_SHINGLES, int(lengths.max(initial=0)))), dtype=np.uint32)
    i = 0
    while i < len(codes):
        # whole functions up to BATCH_SHINGLES shingles (at least one function)
        j = max(i + 1, int(np.searchsorted(offsets, offsets[i] + BATCH_SHINGLES, side="right")) - 1)
        cols = buf[:, : offsets[j] - offsets[i]]
        np.multiply(a, hv[offsets[i]:offsets[j]], out=cols)
        np.add(cols, b, out=cols)  # uint32 wrap-around is the scheme's "mod 2^32"
        sigs[i:j] = np.minimum.reduceat(cols, offsets[i:j] - offsets[i], axis=1).T
        i = j
    return sigs


def minhash_signatures(
    codes: list[str], *, num_perm: int = 128, seed: int = 1, ngram: int = 5, workers: int = 1
) -> np.ndarray:
    """Signatures of all codes, hashed in ``workers`` processes when there are many.
    Exact copies (vendored packages, copied helpers) are hashed once."""
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(c, len(first)) for c in codes), dtype=np.int64, count=len(codes))
    unique = list(first)
    chunks = [unique[i:i + CHUNK_FUNCTIONS] for i in range(0, len(unique), CHUNK_FUNCTIONS)]
    if workers <= 1 or len(chunks) <= 1:
        parts = [_signatures(c, num_perm, seed, ngram) for c in chunks]
    else:
        n = len(chunks)
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_signatures, chunks, [num_perm] * n, [seed] * n, [ngram] * n))
    sigs = np.concatenate(parts) if parts else np.empty((0, num_perm), dtype=np.uint32)
    return sigs[inverse]


def _band_keys(sigs: np.ndarray, hashranges: list[tuple[int, int]]) -> list[tuple[bytes, ...]]:
    """Per function, the bucket key of each LSH band, as ``MinHashLSH`` makes them
    (the band's hash values byte-swapped, as bytes), computed per band in numpy."""
    swapped = sigs.byteswap()
    bands = [
        np.ascontiguousarray(swapped[:, s:e]).view(f"V{(e - s) * swapped.itemsize}").ravel().tolist()
        for s, e in hashranges
    ]
    return list(zip(*bands))


# Odd 64-bit multipliers folding a band's hash values into one integer (any fold works:
# equal bands fold equal, and unequal ones that fold equal only add a candidate).
_FOLD = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                  0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                 dtype=np.uint64)


def _colliding(sigs: np.ndarray, hashranges: list[tuple[int, int]]) -> np.ndarray:
    """Mask of the functions that share some band with another function (a superset:
    bands are compared through a 64-bit fold). Only these can drop or be dropped."""
    mask = np.zeros(len(sigs), dtype=bool)
    wide = sigs.astype(np.uint64)
    for s, e in hashranges:
        fold = np.zeros(len(sigs), dtype=np.uint64)
        for k in range(s, e):  # wraps mod 2^64
            fold += wide[:, k] * _FOLD[(k - s) % len(_FOLD)] + np.uint64(k - s)
        order = np.argsort(fold, kind="stable")
        same = np.flatnonzero(fold[order[1:]] == fold[order[:-1]])
        mask[order[same]] = True
        mask[order[same + 1]] = True
    return mask


def dedup(
    records: list[dict], *, threshold: float = 0.5, num_perm: int = 128, ngram: int = 5, seed: int = 1,
    workers: int = 1,
) -> tuple[list[dict], list[dict]]:
    """(kept, dropped) by MinHash-LSH near-dedup; dropped records get ``duplicate_of``,
    then come the skipped ones (bad text, see the module docstring).

    The banding is datasketch's (``MinHashLSH(threshold, num_perm)`` picks the bands and
    their keys are made the same way), but the buckets are plain dicts: going through
    ``MinHashLSH.query``/``insert`` costs ~0.2 ms a function, as much as all the hashing.
    Only functions that share a band with another one (:func:`_colliding`, found with
    numpy) go through the buckets; the others are kept and nothing can hit them. Each
    bucket holds one kept function (a kept function collided with none), so a
    duplicate's match is the earliest kept function sharing a band, as with the index."""
    records, skipped = _split_bad(records)
    hashranges = MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges
    sigs = minhash_signatures([r["code"] for r in records], num_perm=num_perm, seed=seed, ngram=ngram, workers=workers)
    candidates = np.flatnonzero(_colliding(sigs, hashranges))
    buckets: list[dict[bytes, int]] = [{} for _ in hashranges]
    duplicate_of: dict[int, int] = {}
    # band keys a block at a time: all of them at once would hold b bytes objects per function
    keys_of = chain.from_iterable(
        _band_keys(sigs[candidates[k:k + CHUNK_FUNCTIONS]], hashranges)
        for k in range(0, len(candidates), CHUNK_FUNCTIONS))
    for i, keys in zip(candidates.tolist(), keys_of):
        hits = [j for j in map(dict.get, buckets, keys) if j is not None]
        if hits:
            duplicate_of[i] = min(hits)
        else:
            for bucket, key in zip(buckets, keys):
                bucket[key] = i
    kept = [r for i, r in enumerate(records) if i not in duplicate_of]
    dropped = [{**records[i], "duplicate_of": records[j]["id"]} for i, j in sorted(duplicate_of.items())]
    return kept, dropped + skipped


def dedup_reference(
    records: list[dict], *, threshold: float = 0.5, num_perm: int = 128, ngram: int = 5, seed: int = 1
) -> tuple[list[dict], list[dict]]:
    """The straightforward datasketch version (one ``update`` per shingle): the yardstick
    :func:`dedup` must agree with, and the baseline of ``bench/pool.py``."""
    def minhash(code: str) -> MinHash:
        m = MinHash(num_perm=num_perm, seed=seed)
        for s in shingles(code, ngram):
            m.update(s)
        return m

    records, skipped = _split_bad(records)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept, dropped = [], []
    for i, record in enumerate(records):
        m = minhash(record["code"])
        hits = lsh.query(m)
        if hits:
            dropped.append({**record, "duplicate_of": records[min(hits)]["id"]})
        else:
            lsh.insert(i, m)
            kept.append(record)
    return kept, dropped + skipped
