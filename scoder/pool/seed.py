"""Seed snippet selection: a seeded random sample per task category (SCoder §3.1).

The paper samples 1K snippets from each of the 10 categories (10K seeds) for the
teacher; the snippets not chosen are the supply later iterations synthesise from.

    from scoder.pool.seed import select_seeds
    seeds, supply = select_seeds(categorized, per_category=1000)
"""
from __future__ import annotations

import random
from collections import defaultdict


def select_seeds(records: list[dict], *, per_category: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(seeds, supply): up to ``per_category`` random snippets of each category, and the
    rest; both keep the input order."""
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_category[r["category"]].append(i)
    chosen: set[int] = set()
    for category, indices in by_category.items():
        # one generator per category: a category's sample does not depend on the others
        rng = random.Random(f"{seed}:{category}")
        chosen.update(rng.sample(indices, min(per_category, len(indices))))
    seeds = [r for i, r in enumerate(records) if i in chosen]
    supply = [r for i, r in enumerate(records) if i not in chosen]
    return seeds, supply
