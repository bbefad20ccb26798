"""Seed selection: per category, most confident first (or a seeded sample), weak matches
left to the supply, disjoint from the supply, input order kept."""
import pytest

from scoder.pool.seed import seed_stats, select_seeds


def _records():
    sizes = {"A": 10, "B": 3, "C": 7}
    return [{"id": f"{c}{i}", "category": c, "category_similarity": 0.05 * (i + 1), "category_margin": 0.01 * (i % 4)}
            for i in range(10) for c in sizes if i < sizes[c]]


@pytest.mark.parametrize("order", ["confidence", "random"])
def test_stratified_disjoint_ordered(order):
    records = _records()
    seeds, supply = select_seeds(records, per_category=4, seed=1, order=order)
    counts = {c: sum(r["category"] == c for r in seeds) for c in "ABC"}
    assert counts == {"A": 4, "B": 3, "C": 4}  # a small category gives all it has
    ids = [r["id"] for r in records]
    assert sorted(r["id"] for r in seeds + supply) == sorted(ids)
    assert not {r["id"] for r in seeds} & {r["id"] for r in supply}
    for part in (seeds, supply):
        assert [ids.index(r["id"]) for r in part] == sorted(ids.index(r["id"]) for r in part)


def test_most_confident_first_and_weak_matches_stay_in_the_supply():
    records = _records()
    seeds, supply = select_seeds(records, per_category=3, min_similarity=0.2)
    # A: similarity >= 0.2 leaves A3..A9; margins 0.03 (A3, A7) then 0.02 (A6; A2 is too weak)
    assert [r["id"] for r in seeds if r["category"] == "A"] == ["A3", "A6", "A7"]
    assert not [r for r in seeds if r["category"] == "B"]  # B0..B2 all below 0.2
    assert all(r["category_similarity"] >= 0.2 for r in seeds)
    assert {r["id"] for r in supply} >= {"B0", "B1", "B2", "A0", "A2"}
    stats = seed_stats(records, seeds, per_category=3, min_similarity=0.2)
    assert stats["A"] == {"snippets": 10, "confident": 7, "seeds": 3, "short": 0}
    assert stats["B"] == {"snippets": 3, "confident": 0, "seeds": 0, "short": 3}
    assert stats["C"] == {"snippets": 7, "confident": 4, "seeds": 3, "short": 0}


def test_random_order_seeded():
    records = _records()
    a = select_seeds(records, per_category=4, seed=1, order="random")[0]
    assert a == select_seeds(records, per_category=4, seed=1, order="random")[0]
    assert a != select_seeds(records, per_category=4, seed=2, order="random")[0]
    # adding a category does not change the other categories' seeds
    more = records + [{"id": f"D{i}", "category": "D", "category_similarity": 0.5} for i in range(5)]
    b = select_seeds(more, per_category=4, seed=1, order="random")[0]
    assert [r for r in b if r["category"] != "D"] == a
    with pytest.raises(ValueError, match="pool.seed.order"):
        select_seeds(records, per_category=1, order="best")
