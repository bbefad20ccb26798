"""Benchmark the whole snippet pool, extract to seed, on every function of this machine's Python.

Runs the pool's stages in the method's order on the stdlib + site-packages corpus with
the tiny run's embedded models: extract -> dedup -> filter (with its sandboxed define
check) -> quality (SmolLM2-135M) -> decontaminate (HumanEval) -> categorize (MiniLM) ->
seed, and prints each stage's wall time, CPU time (this process and its worker
processes), throughput and peak memory, then the pool's totals. The quality stage runs on
``--quality-limit`` snippets (at ~1-3 s a snippet on CPU the whole corpus takes hours)
and its time is extrapolated to all of them; its verdicts are then not applied, so the
later stages see every filtered snippet. ``--categorize-limit`` does the same for
categorize. ``--dedup-reference`` also times the straightforward dedup (one datasketch
``MinHash.update`` per shingle, ``MinHashLSH`` query-then-insert) and checks that both keep
the same functions::

    python bench/pool.py [--workers 2] [--limit N] [--quality-limit 32] [--out pool_bench.json]

On a shared machine wall times drift with the load (printed at the start and the end);
CPU times much less: categorize also prints snippets per CPU-second.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from measure import cpu_seconds  # noqa: E402 (bench/measure.py)
from scoder.benchmarks.texts import benchmark_texts, sources as benchmark_sources  # noqa: E402
from scoder.pool.categorize import categorize, category_stats  # noqa: E402
from scoder.pool.decontaminate import decontaminate  # noqa: E402
from scoder.pool.dedup import dedup, dedup_reference  # noqa: E402
from scoder.pool.extract import extract_functions  # noqa: E402
from scoder.pool.filter import filter_functions  # noqa: E402
from scoder.pool.seed import seed_stats, select_seeds  # noqa: E402

BANNED = ["os", "sys", "subprocess", "argparse", "setuptools", "distutils", "matplotlib", "seaborn"]
CATEGORIES = [
    "Algorithmic and Data Structure Problems", "Mathematical and Computational Problems",
    "Database and SQL Problems", "System Design and Architecture Problems", "Security and Cryptography Problems",
    "Performance Optimization Problems", "Web Problems", "Domain Specific Problems",
    "User Interface and Application Design Problems", "Data Science and Machine Learning Problems",
]
STAGES = ("extract", "dedup", "filter", "quality", "decontaminate", "categorize", "seed")


def peak_mib() -> tuple[float, float]:
    """Max RSS so far of this process and of its largest (finished) worker process, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def timed(name: str, n_in: int | None, fn, report: dict, scale: float = 1.0):
    """Run fn(), print and record its wall and CPU seconds, items/s and peak memory
    (n_in None: the items are the records fn returns first; ``scale``: the factor that
    extrapolates a sample's time to the whole input)."""
    t, c = time.perf_counter(), cpu_seconds()
    out = fn()
    sec, cpu = time.perf_counter() - t, cpu_seconds() - c
    n_in = len(out[0]) if n_in is None else n_in
    rate = n_in / sec if sec else float("inf")
    own, children = peak_mib()
    report[name] = {"in": n_in, "seconds": round(sec, 2), "cpu_seconds": round(cpu, 2), "per_second": round(rate, 1),
                    "per_cpu_second": round(n_in / cpu, 1) if cpu else None, "scale": round(scale, 2),
                    "peak_rss_mib": own, "peak_rss_worker_mib": children, "load": round(os.getloadavg()[0], 1)}
    note = f"  (x{scale:.0f} for all)" if scale > 1 else ""
    print(f"{name:<14} {n_in:>7} in {sec:7.1f} s wall {cpu:7.1f} s cpu {rate:8.1f} /s {n_in / max(cpu, 1e-9):8.1f} "
          f"/cpu-s   peak RSS {own:5.0f} MiB{note}   load {os.getloadavg()[0]:.1f}", flush=True)
    return out


def quality_model(folder: Path) -> Path:
    """The tiny run's quality model (SmolLM2-135M-Instruct), converted once like the workflow does."""
    if not (folder / "config.json").is_file():
        from scoder.models import convert_smollm2

        print(f"converting SmolLM2-135M-Instruct into {folder} ...", flush=True)
        convert_smollm2(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes for extract, dedup and filter; torch threads (default: all cores)")
    ap.add_argument("--limit", type=int, default=None, help="sample this many extracted functions")
    ap.add_argument("--quality-limit", type=int, default=32, help="snippets the quality stage scores (0: skip)")
    ap.add_argument("--quality-model", default=str(ROOT / "work/models/smollm2-135m-instruct"))
    ap.add_argument("--categorize-limit", type=int, default=None, help="categorize only the first N snippets")
    ap.add_argument("--per-category", type=int, default=100, help="seeds per category")
    ap.add_argument("--min-similarity", type=float, default=0.1, help="seed threshold (the tiny run's MiniLM one)")
    ap.add_argument("--dedup-reference", action="store_true", help="also time the straightforward dedup")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.workers)
    report: dict = {"workers": args.workers, "cores": os.cpu_count(), "load_start": os.getloadavg()}
    print(f"{os.cpu_count()} cores, {args.workers} workers, load average {os.getloadavg()[0]:.1f}", flush=True)

    sources = [{"type": "stdlib"}, {"type": "tree", "path": sysconfig.get_paths()["purelib"], "name": "site-packages"}]
    records, stats, _ = timed("extract", None, lambda: extract_functions(sources, limit=args.limit,
                                                                         workers=args.workers), report)
    report["extract"].update(files=stats["files_seen"], stats=stats)
    print(f"  {stats['files_seen']} files, {len(records)} functions with a docstring; skipped: "
          + ", ".join(f"{k} {stats[k]}" for k in ("non_utf8", "syntax_error", "too_large", "empty", "read_error",
                                                   "nested_function", "no_docstring")))

    kept, dropped = timed("dedup", len(records), lambda: dedup(records, workers=args.workers), report)
    report["dedup"].update(kept=len(kept), dropped=len(dropped))
    print(f"  kept {len(kept)}, dropped {len(dropped)} near duplicates", flush=True)
    if args.dedup_reference:
        ref_kept, ref_dropped = timed("dedup (straightforward)", len(records), lambda: dedup_reference(records), report)
        same = [r["id"] for r in kept] == [r["id"] for r in ref_kept] and \
            [(r["id"], r["duplicate_of"]) for r in dropped] == [(r["id"], r["duplicate_of"]) for r in ref_dropped]
        ratio = report["dedup (straightforward)"]["seconds"] / report["dedup"]["seconds"]
        report["dedup"].update(speedup_wall=round(ratio, 2), identical=same)
        print(f"  fast is {ratio:.1f}x faster (wall); identical kept set and duplicate_of: {same}", flush=True)

    filtered, fstats, _ = timed("filter", len(kept), lambda: filter_functions(kept, banned_imports=BANNED,
                                                                               workers=args.workers), report)
    report["filter"].update(dropped=fstats["dropped"], define_check=fstats["define_check"])
    d = fstats["define_check"]
    print("  " + ", ".join(f"{k} {v}" for k, v in fstats["dropped"].items() if v))
    print(f"  define check: {d['pass']} of {d['checked']} define on their own ({100 * d['rate']:.1f}%), "
          f"{d['missing_module']} need a module this machine lacks; errors {d['errors']}", flush=True)

    if args.quality_limit:
        from scoder.llm import make_generator
        from scoder.pool.quality import classify_quality

        generator = make_generator({"backend": "transformers", "batch_size": 16,
                                    "model": str(quality_model(Path(args.quality_model)))})
        sample = filtered[:args.quality_limit]
        labelled, qstats = timed("quality", len(sample),
                                 lambda: classify_quality(sample, generator, threshold=0.1, shots=1), report,
                                 scale=len(filtered) / max(1, len(sample)))
        report["quality"].update(yes=qstats["yes"], no=qstats["no"])
        print(f"  {qstats['yes']} of {len(sample)} judged good at p(yes) >= 0.1 (not applied below)", flush=True)

    texts, _ = benchmark_texts(benchmark_sources([{"name": "humaneval"}], {}))
    clean, matches = timed("decontaminate", len(filtered), lambda: decontaminate(filtered, texts), report)
    report["decontaminate"]["matches"] = len(matches)
    print(f"  {len(matches)} removed: {sorted({m['task_id'] for m in matches})[:10]}")

    subset = clean[: args.categorize_limit]
    categorized = timed("categorize", len(subset), lambda: categorize(
        subset, CATEGORIES, embedder="minilm", progress=False, max_length=128, dtype="auto", batch_size=128),
        report, scale=len(clean) / max(1, len(subset)))
    confidence = category_stats(categorized)
    report["categorize"]["categories"] = confidence
    print("  " + ", ".join(f"{c.split(' ')[0]} {v['snippets']} (median cos {v['median_similarity']:.2f})"
                           for c, v in confidence.items()))

    seeds, supply = timed("seed", len(categorized), lambda: select_seeds(
        categorized, per_category=args.per_category, min_similarity=args.min_similarity), report)
    per = seed_stats(categorized, seeds, per_category=args.per_category, min_similarity=args.min_similarity)
    report["seed"].update(seeds=len(seeds), supply=len(supply), per_category=per)
    print(f"  {len(seeds)} seeds, {len(supply)} supply; reaching cosine {args.min_similarity}: "
          + ", ".join(f"{c.split(' ')[0]} {v['confident']}" for c, v in per.items()))

    ran = [s for s in STAGES if s in report]
    total = sum(report[s]["seconds"] * report[s]["scale"] for s in ran)
    total_cpu = sum(report[s]["cpu_seconds"] * report[s]["scale"] for s in ran)
    own, worker = peak_mib()
    report["pool"] = {"seconds": round(total, 1), "cpu_seconds": round(total_cpu, 1), "peak_rss_mib": own,
                      "peak_rss_bound_mib": round(own + args.workers * worker), "load_end": os.getloadavg()}
    print("\nstage             in        s wall   s cpu  (extrapolated to the whole input)")
    for s in ran:
        r = report[s]
        scale = r["scale"]
        print(f"{s:<14} {r['in'] * scale:>7.0f} {r['seconds'] * scale:>10.1f} {r['cpu_seconds'] * scale:>7.1f}")
    print(f"pool, extract to seed: {total:.1f} s wall, {total_cpu:.1f} s cpu; peak RSS {own:.0f} MiB "
          f"(with {args.workers} workers at most {report['pool']['peak_rss_bound_mib']} MiB); "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
