"""Seed selection: stratified, seeded, disjoint from the supply, input order kept."""
from scoder.pool.seed import select_seeds


def _records():
    sizes = {"A": 10, "B": 3, "C": 7}
    return [{"id": f"{c}{i}", "category": c} for i in range(10) for c in sizes if i < sizes[c]]


def test_stratified_disjoint_ordered():
    records = _records()
    seeds, supply = select_seeds(records, per_category=4, seed=1)
    counts = {c: sum(r["category"] == c for r in seeds) for c in "ABC"}
    assert counts == {"A": 4, "B": 3, "C": 4}  # a small category gives all it has
    ids = [r["id"] for r in records]
    assert sorted(r["id"] for r in seeds + supply) == sorted(ids)
    assert not {r["id"] for r in seeds} & {r["id"] for r in supply}
    for part in (seeds, supply):
        assert [ids.index(r["id"]) for r in part] == sorted(ids.index(r["id"]) for r in part)


def test_seeded():
    records = _records()
    a = select_seeds(records, per_category=4, seed=1)[0]
    assert a == select_seeds(records, per_category=4, seed=1)[0]
    assert a != select_seeds(records, per_category=4, seed=2)[0]
    # adding a category does not change the other categories' seeds
    more = records + [{"id": f"D{i}", "category": "D"} for i in range(5)]
    b = select_seeds(more, per_category=4, seed=1)[0]
    assert [r for r in b if r["category"] != "D"] == a
