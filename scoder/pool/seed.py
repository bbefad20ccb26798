"""Seed snippet selection per task category (SCoder §3.1).

The paper takes 1K snippets from each of the 10 categories (10K seeds) for the teacher;
the snippets not chosen are the supply later iterations synthesise from. A snippet is a
candidate seed of its category when its similarity to the category reaches
``min_similarity`` (weak matches stay in the supply); of the candidates, ``order``
takes:

- ``confidence``: the most confidently categorized first: largest margin over the
  runner-up category, then largest similarity (categorize's ``category_margin`` and
  ``category_similarity``);
- ``random``: a seeded random sample, as the paper words it ("We then randomly sample
  1K code snippets from each category").

    from scoder.pool.seed import select_seeds, seed_stats
    seeds, supply = select_seeds(categorized, per_category=1000, min_similarity=0.75)
"""
from __future__ import annotations

import random
from collections import defaultdict

ORDERS = ("confidence", "random")


def _candidates(records: list[dict], min_similarity: float | None) -> dict[str, list[int]]:
    """Indices of each category's snippets that may be seeds, in input order."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if min_similarity is None or r.get("category_similarity", 1.0) >= min_similarity:
            by_category[r["category"]].append(i)
    return by_category


def select_seeds(records: list[dict], *, per_category: int, seed: int = 0, min_similarity: float | None = None,
                 order: str = "confidence") -> tuple[list[dict], list[dict]]:
    """(seeds, supply): up to ``per_category`` snippets of each category that reach
    ``min_similarity``, taken by ``order``, and the rest; both keep the input order."""
    if order not in ORDERS:
        raise ValueError(f"pool.seed.order {order!r} is not one of {', '.join(ORDERS)}")
    chosen: set[int] = set()
    for category, indices in _candidates(records, min_similarity).items():
        if order == "random":
            # one generator per category: a category's sample does not depend on the others
            chosen.update(random.Random(f"{seed}:{category}").sample(indices, min(per_category, len(indices))))
        else:
            ranked = sorted(indices, key=lambda i: (-records[i].get("category_margin", 0.0),
                                                    -records[i].get("category_similarity", 0.0), i))
            chosen.update(ranked[:per_category])
    seeds = [r for i, r in enumerate(records) if i in chosen]
    supply = [r for i, r in enumerate(records) if i not in chosen]
    return seeds, supply


def seed_stats(records: list[dict], seeds: list[dict], *, per_category: int,
               min_similarity: float | None = None) -> dict:
    """Per category: snippets, those reaching ``min_similarity`` (all seeds do), seeds, and
    how many seeds it lacks (``short``: fewer confident snippets than ``per_category``)."""
    total: dict[str, int] = defaultdict(int)
    for r in records:
        total[r["category"]] += 1
    confident = {c: len(ix) for c, ix in _candidates(records, min_similarity).items()}
    chosen: dict[str, int] = defaultdict(int)
    for r in seeds:
        chosen[r["category"]] += 1
    return {c: {"snippets": total[c], "confident": confident.get(c, 0), "seeds": chosen[c],
                "short": max(0, per_category - chosen[c])} for c in sorted(total)}
