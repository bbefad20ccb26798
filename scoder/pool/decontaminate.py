"""Benchmark decontamination by word n-gram overlap (SCoder Appendix A, "Data Decontamination").

"we employ an n-gram filtering technique to remove any functions that contain
solutions or prompts from the benchmarks used in this work": a snippet is removed
when any ``n`` consecutive words of its code also occur in a prompt or solution of
a benchmark the run evaluates (HumanEval, MBPP, LiveCodeBench, BigCodeBench, read by
``scoder.benchmarks.texts``; one whose data is absent is listed with the reason).
Words are ``\\w+`` runs, so indentation, line breaks and punctuation spacing do not
hide a copied solution. Benchmark texts shorter than ``n`` words are ignored (a
three-word n-gram like ``return a + b`` would remove innocent snippets), and so are
benchmark n-grams with fewer than ``min_words`` words that are not numbers: runs of
literals from docstring examples ("0 1 2 3 4 5 6 7 8 9") matched ~90 unrelated
site-packages functions.

    from scoder.benchmarks.texts import benchmark_texts, sources
    texts, absent = benchmark_texts(sources("evaluation", settings["evaluation"]))
    kept, matches = decontaminate(records, texts, n=10)
    summary(texts, absent, matches)      # per benchmark: problems, texts, removed
"""
from __future__ import annotations

import re

WORD = re.compile(r"\w+")


def _ngrams(words: list[str], n: int):
    return zip(*[words[k:] for k in range(n)])


def decontaminate(
    records: list[dict], texts: dict[str, list[tuple[str, str]]], *, n: int = 10, min_words: int = 3
) -> tuple[list[dict], list[dict]]:
    """(kept records, one match per removed record): ``{id, benchmark, task_id, ngram}`` of
    the first overlap and ``benchmarks``, every benchmark the record overlaps."""
    index: dict[tuple[str, ...], dict[str, str]] = {}
    for bench, items in texts.items():
        for task_id, text in items:
            for gram in _ngrams(WORD.findall(text), n):
                if sum(not w.isdigit() for w in gram) >= min_words:
                    index.setdefault(gram, {}).setdefault(bench, task_id)
    kept, matches = [], []
    for record in records:
        hits: dict[str, tuple[str, tuple]] = {}
        for gram in _ngrams(WORD.findall(record["code"]), n):
            for bench, task_id in index.get(gram, {}).items():
                hits.setdefault(bench, (task_id, gram))
        if not hits:
            kept.append(record)
            continue
        bench, (task_id, gram) = next(iter(hits.items()))
        matches.append({"id": record["id"], "benchmark": bench, "task_id": task_id, "ngram": " ".join(gram),
                        "benchmarks": sorted(hits)})
    return kept, matches


def summary(texts: dict[str, list[tuple[str, str]]], absent: dict[str, str], matches: list[dict]) -> dict:
    """Per benchmark: problems and texts checked, records removed for overlapping it (a
    record may overlap several) and the tasks they overlapped; absent ones with the reason."""
    out = {}
    for bench, items in texts.items():
        hit = [m for m in matches if bench in m["benchmarks"]]
        out[bench] = {"problems": len({t for t, _ in items}), "texts": len(items), "removed": len(hit),
                      "matched_tasks": sorted({m["task_id"] for m in hit if m["benchmark"] == bench})}
    return {"benchmarks": out, "absent": dict(absent)}
