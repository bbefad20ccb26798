"""The initial seed knowledge: programming questions (SODA §4.6), and the decontamination
of SODA's training data against the benchmarks.

The paper starts from 110K automatically generated Evol-Instruct questions
(evol-codealpaca-v1, field ``instruction``).  Sources:

* ``{type: file, path, field}`` — a local JSONL file (the paper's data);
* ``{type: scoder_supply, run}`` — a stated stand-in where that file cannot be
  had (the tiny run): the snippet supply of a SCoder run's pool, each function
  turned into a question (signature + docstring, ``scoder.data.docstring_pairs``).
  The SCoder pool is already decontaminated (n-gram overlap), and the
  artifacts are shared with that run.

Decontamination (§4.6: "we use 5-grams and a Jaccard similarity threshold of 0.7 to
verify that no duplication between our training data and the docstrings or solutions
from HumanEval, MBPP, and MultiPL-E benchmarks"): a record goes when the word 5-gram
set of any of its texts (a question here; the question and the teacher's answers in
``soda_teacher``, so the questions each later cycle writes are covered too) has
Jaccard similarity >= 0.7 with a benchmark prompt or solution
(``scoder.benchmarks.texts``: every benchmark the run evaluates whose data is
present).  datasketch's MinHash LSH over the pool dedup's shingles
(``scoder.pool.dedup.shingles``) proposes candidates at a lower threshold and the
exact Jaccard of the two sets decides.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from scoder.benchmarks.texts import benchmark_texts
from scoder.data import docstring_pairs
from scoder.io import iter_jsonl
from scoder.pool.dedup import shingles


def from_supply(snippets: list[dict]) -> list[dict]:
    """Stand-in questions from pool snippets: "Write a Python function `sig`." + docstring."""
    return [{"id": p["id"].removeprefix("standin:"), "question": p["problem"], "language": "python"}
            for p in docstring_pairs(snippets, None)]


def from_file(path: str, field: str = "instruction") -> list[dict]:
    """Questions from a JSONL file (evol-codealpaca-v1: ``instruction``)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"soda_runs: questions.source.path {path} does not exist; download "
                                "evol-codealpaca-v1 (theblackcat102/evol-codealpaca-v1) as JSONL there, or use "
                                "source {type: scoder_supply, run: tiny}")
    out = []
    for i, row in enumerate(iter_jsonl(path)):
        if row.get(field):
            out.append({"id": str(row.get("id", f"q{i}")), "question": str(row[field])})
    return out


def _minhash(shingle_set: set, num_perm: int) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch(list(shingle_set))
    return m


# What a teacher's knowledge record trains on: SFT's answer, DPO's code blocks, the question.
TRAINING_FIELDS = ("question", "correct", "correct_code", "faulty", "faulty_code")


def decontaminate(records: list[dict], texts: dict[str, list[tuple[str, str]]], *, fields=("question",),
                  ngram: int = 5, threshold: float = 0.7, num_perm: int = 128) -> tuple[list[dict], list[dict]]:
    """(kept, removed): a record is removed when the ``ngram``-shingle set of one of its
    ``fields`` has Jaccard similarity >= ``threshold`` with a benchmark text; each removed
    record says which field matched which benchmark task, and how closely."""
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.2), num_perm=num_perm)
    sets = {}
    for bench, items in texts.items():
        for i, (task_id, text) in enumerate(items):
            if text.split():
                key = f"{bench}|{i}|{task_id}"
                sets[key] = shingles(text, ngram)
                lsh.insert(key, _minhash(sets[key], num_perm))
    kept, removed = [], []
    for record in records:
        hit = None
        for name in fields:
            text = record.get(name)
            if not text or not str(text).split():
                continue
            mine = shingles(str(text), ngram)
            best = max(((len(mine & sets[k]) / len(mine | sets[k]), k) for k in lsh.query(_minhash(mine, num_perm))),
                       default=(0.0, None))
            if best[0] >= threshold:
                bench, _, task_id = best[1].split("|", 2)
                hit = {"id": record["id"], "field": name, "benchmark": bench, "task_id": task_id,
                       "jaccard": round(best[0], 4)}
                break
        if hit:
            removed.append(hit)
        else:
            kept.append(record)
    return kept, removed


def decontamination_stats(texts: dict, absent: dict, removed: list[dict]) -> dict:
    """Per benchmark: problems and texts checked, records removed; absent ones with the reason."""
    return {"benchmarks": {b: {"problems": len({t for t, _ in items}), "texts": len(items),
                               "removed": sum(r["benchmark"] == b for r in removed)} for b, items in texts.items()},
            "absent": dict(absent)}


def initial_questions(questions: list[dict], *, limit: int | None, seed: int, benchmarks: list[dict],
                      ngram: int = 5, threshold: float = 0.7) -> tuple[list[dict], dict]:
    """Decontaminated questions, then ``limit`` of them in a seeded order (all when None).
    ``benchmarks``: resolved entries (``scoder.benchmarks.texts.sources``)."""
    texts, absent = benchmark_texts(benchmarks)
    kept, removed = decontaminate(questions, texts, ngram=ngram, threshold=threshold)
    order = np.random.default_rng(seed).permutation(len(kept)) if limit and limit < len(kept) else range(len(kept))
    chosen = [kept[i] for i in list(order)[:limit or len(kept)]]
    for q in chosen:
        q["cycle"] = 1
    return chosen, {"in": len(questions), "contaminated": len(removed), "out": len(chosen),
                    "decontamination": decontamination_stats(texts, absent, removed), "removed": removed[:50]}
