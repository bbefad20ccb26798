"""Categorize speed with MiniLM: the tiny run's settings against the earlier ones, on stdlib snippets.

Extracts and filters the stdlib (no define check), then categorizes the first ``--n``
snippets with each setting: ``float32, 256 tokens, batches of 32`` (the earlier
default) and the tiny run's ``auto dtype (bfloat16 on AMX/AVX512-BF16 CPUs), 128
tokens, batches of 128``, on ``--threads`` torch threads. Prints snippets per second of
wall time and per CPU-second (steadier on a shared machine), the load average, and how
many snippets get the same category under both::

    python bench/categorize.py [--threads 2] [--n 1000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from measure import cpu_seconds  # noqa: E402 (bench/measure.py)
from scoder.pool.categorize import CATEGORY_DESCRIPTIONS, categorize  # noqa: E402
from scoder.pool.embed import load_embedder  # noqa: E402
from scoder.pool.extract import extract_functions  # noqa: E402
from scoder.pool.filter import filter_functions  # noqa: E402

SETTINGS = {"earlier (float32, 256 tokens, batch 32)": {"dtype": "float32", "max_length": None, "batch_size": 32},
            "tiny (auto dtype, 128 tokens, batch 128)": {"dtype": "auto", "max_length": 128, "batch_size": 128}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=1000, help="snippets to categorize")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per setting (the best is printed)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    records, _, _ = extract_functions([{"type": "stdlib"}], workers=args.threads)
    snippets, _, _ = filter_functions(records, banned_imports=["os", "sys", "subprocess"], define_check=False,
                                      workers=args.threads)
    snippets = snippets[:args.n]
    categories = list(CATEGORY_DESCRIPTIONS)
    print(f"{len(snippets)} stdlib snippets, {args.threads} torch threads, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    for label, s in SETTINGS.items():
        model = load_embedder("minilm", max_seq_length=s["max_length"], dtype=s["dtype"], device="cpu")
        categorize(snippets[:s["batch_size"]], categories, embedder="minilm", model=model, progress=False,
                   batch_size=s["batch_size"])  # warm-up: kernels are picked on the first batch
        best = None
        for _ in range(args.repeat):
            t, c = time.perf_counter(), cpu_seconds()
            out = categorize(snippets, categories, embedder="minilm", model=model, progress=False,
                             batch_size=s["batch_size"])
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            if best is None or wall < best[0]:
                best = (wall, cpu)
        results[label] = out
        print(f"{label}: {len(snippets) / best[0]:6.1f} snippets/s wall, {len(snippets) / best[1]:6.1f} per "
              f"CPU-second (dtype {next(model.model.parameters()).dtype}); load average {os.getloadavg()[0]:.2f}",
              flush=True)
    a, b = results.values()
    same = sum(x["category"] == y["category"] for x, y in zip(a, b))
    print(f"same category under both: {same} of {len(snippets)}")


if __name__ == "__main__":
    main()
