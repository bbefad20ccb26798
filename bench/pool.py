"""Benchmark the snippet-pool stages on every function of this machine's Python.

Runs extract (stdlib + site-packages) -> dedup -> filter -> decontaminate (HumanEval)
-> categorize (MiniLM) and prints each stage's throughput. Dedup is also run the
straightforward way (one datasketch ``MinHash.update`` per shingle, ``MinHashLSH``
query/insert) on the same input: the speed ratio and whether both keep exactly the
same functions. Peak memory (max RSS) is reported after each stage::

    python bench/pool.py [--workers 1] [--limit N] [--categorize-limit N] [--out pool_bench.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import sysconfig
import time
from collections import Counter

from scoder.pool.categorize import categorize
from scoder.pool.decontaminate import benchmark_texts, decontaminate
from scoder.pool.dedup import dedup, dedup_reference
from scoder.pool.extract import extract_functions
from scoder.pool.filter import filter_functions

BANNED = ["os", "sys", "subprocess", "argparse", "setuptools", "distutils", "matplotlib", "seaborn"]
CATEGORIES = [
    "Algorithmic and Data Structure Problems", "Mathematical and Computational Problems",
    "Database and SQL Problems", "System Design and Architecture Problems", "Security and Cryptography Problems",
    "Performance Optimization Problems", "Web Problems", "Domain Specific Problems",
    "User Interface and Application Design Problems", "Data Science and Machine Learning Problems",
]


def peak_mib() -> tuple[float, float]:
    """Max RSS so far of this process and of its (finished) worker processes, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def timed(name: str, n_in: int | None, fn, report: dict):
    """Run fn(), print and record its seconds, items/s and peak memory (n_in None:
    the items are the records fn returns first)."""
    t = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - t
    n_in = len(out[0]) if n_in is None else n_in
    rate = n_in / sec if sec else float("inf")
    own, children = peak_mib()
    report[name] = {"in": n_in, "seconds": round(sec, 2), "per_second": round(rate, 1),
                    "peak_rss_mib": own, "peak_rss_children_mib": children}
    print(f"{name:<22} {n_in:>7} in  {sec:8.1f} s  {rate:9.1f} /s  peak RSS {own:7.0f} MiB"
          + (f" (workers {children:.0f} MiB)" if children else ""), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1, help="hashing processes for the fast dedup")
    ap.add_argument("--limit", type=int, default=None, help="sample this many extracted functions")
    ap.add_argument("--categorize-limit", type=int, default=None, help="categorize only the first N snippets")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    report: dict = {}

    sources = [{"type": "stdlib"}, {"type": "tree", "path": sysconfig.get_paths()["purelib"], "name": "site-packages"}]
    records, stats = timed("extract", None, lambda: extract_functions(sources, limit=args.limit), report)
    report["extract"].update(files=stats["files_seen"], stats=stats)
    print(f"  {stats['files_seen']} files, {len(records)} functions with a docstring; skipped: "
          + ", ".join(f"{k} {stats[k]}" for k in ("non_utf8", "syntax_error", "too_large", "empty", "no_docstring")))

    # the fast dedup is timed before and after the straightforward one (the machine is
    # shared, its load drifts); the speedup uses the best of these runs
    fast = lambda: dedup(records, workers=args.workers)  # noqa: E731
    kept, dropped = timed("dedup (fast)", len(records), fast, report)
    ref_kept, ref_dropped = timed("dedup (straightforward)", len(records), lambda: dedup_reference(records), report)
    timed("dedup (fast, again)", len(records), fast, report)
    same = [r["id"] for r in kept] == [r["id"] for r in ref_kept] and \
        [r["duplicate_of"] for r in dropped] == [r["duplicate_of"] for r in ref_dropped]
    best = min(report["dedup (fast)"]["seconds"], report["dedup (fast, again)"]["seconds"])
    ratio = report["dedup (straightforward)"]["seconds"] / best
    report["dedup"] = {"kept": len(kept), "dropped": len(dropped), "speedup": round(ratio, 2), "identical": same}
    print(f"  kept {len(kept)}, dropped {len(dropped)}; fast is {ratio:.1f}x faster; identical decisions: {same}")

    filtered, reasons = timed("filter", len(kept), lambda: filter_functions(kept, banned_imports=BANNED), report)
    report["filter"]["reasons"] = reasons
    print("  " + ", ".join(f"{k} {v}" for k, v in reasons.items()))

    texts = benchmark_texts([{"name": "humaneval"}])
    clean, matches = timed("decontaminate", len(filtered), lambda: decontaminate(filtered, texts), report)
    report["decontaminate"]["matches"] = len(matches)
    print(f"  {len(matches)} removed: {sorted({m['task_id'] for m in matches})[:10]}")

    subset = clean[: args.categorize_limit]
    categorized = timed("categorize (minilm)", len(subset),
                        lambda: categorize(subset, CATEGORIES, embedder="minilm", progress=False), report)
    counts = Counter(r["category"] for r in categorized)
    report["categorize (minilm)"]["categories"] = dict(counts)
    print("  " + ", ".join(f"{c.split(' ')[0]} {n}" for c, n in counts.most_common()))

    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
