"""The pool target: results/pool_<run>.jsonl (seeds, then supply, each with its role) and the
counts beside it; the report's pool section shows every stage's skips and drops by reason."""
from scoder.io import read_jsonl, write_jsonl
from scoder.pool.export import left_out, pool_counts, pool_markdown, pool_summary, write_pool
from scoder.report import tables_markdown


def pool_stats():
    return {
        "extract": {"stage": "extract", "settings": {"limit": None}, "out": 5, "files_seen": 4,
                    "functions_seen": 12, "skipped": {"syntax_error": 1, "no_docstring": 6, "nested_function": 1,
                                                      "sampled_out": 0},
                    "skip_log": "work/extract/0123456789/skipped.jsonl"},
        "dedup": {"in": 5, "out": 4, "dropped": 1, "skipped": {"bad_text": 0}},
        "filter": {"in": 4, "out": 3, "dropped": {"no_return_value": 1, "define_error": 0, "kept": 3},
                   "define_check": {"checked": 3, "passed": 3}, "skip_log": "work/filter/abcdef0123/skipped.jsonl"},
        "quality": {"in": 3, "out": 3},
        "decontaminate": {"in": 3, "out": 2, "matched_tasks": ["HumanEval/0"]},
        "categorize": {"in": 2, "out": 2, "categories": {"Web Problems": 2}},
        "seed": {"in": 2, "out": 1, "supply": 1},
    }


def test_pool_file_holds_seeds_then_supply_with_the_counts_beside(tmp_path):
    write_jsonl(tmp_path / "seeds.jsonl", [{"id": "a", "category": "Web Problems"}])
    write_jsonl(tmp_path / "supply.jsonl", [{"id": "b", "category": "Web Problems"}])
    roles = write_pool(str(tmp_path / "seeds.jsonl"), str(tmp_path / "supply.jsonl"), str(tmp_path / "pool.jsonl"))
    assert roles == {"seed": 1, "supply": 1}
    assert [(r["id"], r["role"]) for r in read_jsonl(tmp_path / "pool.jsonl")] == [("a", "seed"), ("b", "supply")]
    dirs = {stage: f"work/{stage}/0123456789" for stage in pool_stats()}
    sources = [{"type": "tree", "path": "src", "name": "mine"}]
    summary = pool_summary("own", sources, pool_stats(), dirs, roles)
    assert summary["snippets"] == 2 and summary["sources"] == sources
    assert list(summary["stages"]) == list(pool_stats())
    assert summary["stages"]["extract"]["skipped"]["no_docstring"] == 6
    assert "settings" not in summary["stages"]["extract"]  # counts, not the stage's settings
    assert summary["stages"]["filter"]["dir"] == "work/filter/0123456789"
    assert summary["skip_logs"] == {"extract": "work/extract/0123456789/skipped.jsonl",
                                    "filter": "work/filter/abcdef0123/skipped.jsonl"}


def test_left_out_gives_each_stage_its_reasons():
    counts = pool_counts(pool_stats())
    assert left_out("extract", counts["extract"]) == {"syntax_error": 1, "no_docstring": 6, "nested_function": 1}
    assert left_out("dedup", counts["dedup"]) == {"near_duplicate": 1}
    assert left_out("filter", counts["filter"]) == {"no_return_value": 1}
    assert left_out("quality", counts["quality"]) == {}
    assert left_out("decontaminate", counts["decontaminate"]) == {"overlaps_a_benchmark": 1}
    assert left_out("seed", counts["seed"]) == {}  # the supply is not left out


def test_markdown_report_shows_skips_by_reason_and_the_skip_logs():
    lines = pool_markdown(pool_counts(pool_stats()))
    assert "| extract | 4 files | 5 | no docstring 6; syntax error (files) 1; nested function 1 |" in lines
    assert "| filter | 4 | 3 | no return value 1 |" in lines
    assert "| seed | 2 | 1 seeds + 1 supply |  |" in lines
    assert "`work/extract/0123456789/skipped.jsonl`" in lines[-1] and "`work/filter/" in lines[-1]
    results = {"run": "own", "model": "SCoder-own", "benchmarks": {}, "benchmarks_absent": {},
               "data": {"pool": pool_counts(pool_stats())}}
    assert "## Snippet pool" in tables_markdown(results, [], {}, {})
