"""The report's figures: each plot function draws what the stage files say, and
``render_run`` turns a run's files into every figure of ``rules/plots.smk``."""
import json
from pathlib import Path

import pytest
from PIL import Image

from scoder import plots
from scoder.io import write_json, write_jsonl

ASPECTS = ["code_correctness", "code_clarity", "difficulty"]
CATEGORIES = ["Algorithmic and Data Structure Problems", "Web Problems", "Database and SQL Problems"]


def pool_stats():
    return {
        "extract": {"out": 400, "functions_seen": 16000, "functions_extracted": 6800},
        "dedup": {"in": 400, "out": 380, "dropped": 20},
        "filter": {"in": 380, "out": 200, "dropped": {"no_return_value": 150, "too_long": 30,
                                                    "syntax_error": 0, "kept": 200}},
        "quality": {"in": 200, "out": 150},
        "decontaminate": {"in": 150, "out": 148, "matched_tasks": ["HumanEval/0"]},
        "categorize": {"in": 148, "out": 148, "categories": {CATEGORIES[0]: 100, CATEGORIES[1]: 40,
                                                              CATEGORIES[2]: 8}},
        "seed": {"in": 148, "out": 12, "supply": 136,
                 "seeds_per_category": {CATEGORIES[0]: 5, CATEGORIES[1]: 5, CATEGORIES[2]: 2}},
    }


def scored_records(n, shift):
    return [{"id": f"s{j}", "aspect_scores": {a: (j + k + shift) % 10 for k, a in enumerate(ASPECTS)},
             "composite": 5.0 + shift} for j in range(n)]


def assert_image(path):
    with Image.open(path) as img:
        assert img.width > 300 and img.height > 200


def test_funnel_counts_follow_the_pool_through_every_filter(tmp_path):
    summary = plots.plot_pool_funnel(pool_stats(), tmp_path / "funnel.png")
    assert summary["stages"] == ["functions in the sources", "… with a docstring", "extract", "dedup", "filter",
                                 "quality", "decontaminate", "categorize", "seed"]
    assert summary["counts"] == [16000, 6800, 400, 380, 200, 150, 148, 148, 12]
    # every snippet that left is accounted for, with the filter's own reasons; zero reasons are left out
    assert summary["drops"] == {"dedup: near duplicate": 20, "filter: no return value": 150,
                                "filter: too long": 30, "quality: judged low quality": 50,
                                "decontaminate: overlaps a benchmark": 2,
                                "seed: not a seed (kept as supply)": 136}
    assert_image(tmp_path / "funnel.png")


def test_funnel_shows_why_extract_skipped_files_and_functions(tmp_path):
    stats = pool_stats()
    stats["extract"]["skipped"] = {"syntax_error": 3, "no_docstring": 9000, "nested_function": 200,
                                   "sampled_out": 6400, "non_utf8": 0}
    drops = plots.funnel_counts(stats)[2]
    assert drops["extract: syntax error (files)"] == 3 and drops["extract: no docstring"] == 9000
    assert drops["extract: sampled out"] == 6400 and "extract: non utf8 (files)" not in drops
    assert drops["filter: no return value"] == 150  # the other stages' reasons as before


def test_categories_keep_the_configured_order_and_count_seeds(tmp_path):
    st = pool_stats()
    order = CATEGORIES[::-1] + ["Security and Cryptography Problems"]
    summary = plots.plot_categories(st["categorize"]["categories"], st["seed"]["seeds_per_category"],
                                    tmp_path / "cat.svg", order=order)
    assert summary["categories"] == order  # an empty category is still shown, as zero
    assert summary["pool"] == [8, 40, 100, 0]
    assert summary["seeds"] == [2, 5, 5, 0]
    assert (tmp_path / "cat.svg").read_text().lstrip().startswith("<?xml")


def test_aspect_scores_one_panel_per_iteration(tmp_path):
    scored = {1: scored_records(6, 0), 2: scored_records(4, 2), 3: []}
    summary = plots.plot_aspect_scores(scored, ASPECTS, tmp_path / "aspects.png")
    assert summary["iterations"] == [1, 2, 3]
    assert summary["n"] == [6, 4, 0]
    assert summary["means"][1]["code_correctness"] == pytest.approx(sum(range(6)) / 6)
    assert summary["means"][2]["composite"] == 7.0
    assert summary["means"][3]["difficulty"] is None
    assert_image(tmp_path / "aspects.png")


def test_aspect_scores_summarize_every_sample_when_dots_are_thinned(tmp_path):
    records = scored_records(2000, 0)  # more than MAX_DOTS per box
    summary = plots.plot_aspect_scores({1: records}, ASPECTS, tmp_path / "aspects.png")
    assert summary["n"] == [2000]
    assert summary["means"][1]["difficulty"] == pytest.approx(sum((j + 2) % 10 for j in range(2000)) / 2000)


def test_influence_histograms_mark_the_selection_cut(tmp_path):
    selections = {1: {"values": [0.9, 0.1, None, 0.5, 0.7], "cut": 0.5, "out": 3,
                      "settings": {"k": 3, "by": "influence"}},
                  2: {"values": [], "cut": None, "out": 0, "settings": {"k": 3, "by": "influence"}}}
    summary = plots.plot_influence(selections, tmp_path / "influence.png")
    assert summary == {"iterations": [1, 2], "n": [5, 0], "selected": [3, 0], "cut": [0.5, None],
                       "missing": [1, 0]}
    assert_image(tmp_path / "influence.png")


def test_benchmark_curve_aligns_metrics_across_probes_and_the_final_model(tmp_path):
    probes = [("original", {"humaneval": {"base": {"pass@1": 10.0, "n": 164}}}),
              ("after iteration 1", {"humaneval": {"base": {"pass@1": 20.0, "n": 164},
                                                   "plus": {"pass@1": 15.0, "n": 164}}})]
    final = {"humaneval": {"base": {"pass@1": 30.0, "n": 164, "dataset": "HE"}}, "mbpp": {"base": {"pass@1": 5.0}}}
    summary = plots.plot_benchmark_curve(probes, final, tmp_path / "bench.png")
    assert summary["labels"] == ["original", "after iteration 1", "final SCoder"]
    assert summary["metrics"] == {"humaneval (base)": [10.0, 20.0, 30.0], "humaneval (plus)": [None, 15.0, None],
                                  "mbpp (base)": [None, None, 5.0]}
    assert_image(tmp_path / "bench.png")


def test_benchmark_metrics_read_both_result_layouts():
    assert plots.benchmark_metrics({"humaneval": {"base": {"pass@1": 12.5, "n": 8}}}) == {"humaneval (base)": (12.5, 8)}
    assert plots.benchmark_metrics({"humaneval": {"base": 0.25, "n": 8, "dataset": "HE"}}) == \
        {"humaneval (base)": (0.25, 8)}


def results_json():
    return {"run": "t", "model": "SCoder-t",
            "benchmarks": {"humaneval": {"base": {"pass@1": 25.0, "n": 8, "dataset": "HumanEval"}}},
            "benchmarks_absent": {"mbpp": "no MBPP data file configured"},
            "data": {"pool": {"extract": {"out": 400, "skipped": {"no_docstring": 9000, "syntax_error": 3}},
                              "seed": {"in": 148, "out": 12}},
                     "iterations": [{"iteration": 1, "samples": 6, "selected": 3, "selection_cut": 0.5,
                                     "parse_failures": {"relevance": 0}}]},
            "cost": {"stages": {"extract": {"wall_s": 6.0, "max_rss_mb": 200.0, "gpu_hours": 0.0, "jobs": 1},
                                "sample": {"wall_s": 200.0, "max_rss_mb": 1200.0, "gpu_hours": 0.5, "jobs": 4}}},
            "provenance": {"git_commit": "abc", "packages": {"torch": "2.13.0"}}}


def test_results_table_shows_every_field(tmp_path):
    counts = plots.write_results_table(results_json(), tmp_path / "table.html")
    html = (tmp_path / "table.html").read_text()
    assert counts["Benchmarks (pass@1)"] == 2  # the score and the benchmark that was not run
    assert counts["Snippet pool"] == 2 and counts["Bootstrap iterations"] == 1 and counts["Cost per stage"] == 2
    assert "not run: no MBPP data file configured" in html
    assert "<td>no docstring 9,000; syntax error (files) 3</td>" in html  # skips by reason
    for field in ("provenance.packages.torch", "data.iterations[0].parse_failures.relevance",
                  "cost.stages.sample.gpu_hours"):
        assert f"<td>{field}</td>" in html


def test_render_run_draws_every_figure_from_stage_files(tmp_path):
    files = {}
    for stage, st in pool_stats().items():
        files[f"{stage}_stats"] = str(tmp_path / f"{stage}.json")
        write_json(files[f"{stage}_stats"], st)
    for i, n in ((1, 6), (2, 4)):
        files[f"iter{i}_scored"] = [str(tmp_path / f"scored{i}_{shard}.jsonl") for shard in range(2)]
        for shard, path in enumerate(files[f"iter{i}_scored"]):  # two shards of n/2 samples each
            write_jsonl(path, scored_records(n // 2, i + shard))
        files[f"iter{i}_select_stats"] = str(tmp_path / f"select{i}.json")
        write_json(files[f"iter{i}_select_stats"], {"values": [0.1 * k for k in range(n)], "cut": 0.1 * (n - 3),
                                                    "out": 3, "settings": {"by": "influence"}})
    for name, score in (("iter1", 12.5), ("original", 0.0)):
        files[f"probe_{name}"] = str(tmp_path / f"probe_{name}.json")
        write_json(files[f"probe_{name}"], {"synthesizer": name, "benchmarks": {"humaneval": {"base": {"pass@1": score}}}})
    files["results"] = str(tmp_path / "results.json")
    write_json(files["results"], results_json())
    outputs = {what: str(tmp_path / "out" / name) for what, name in
               [("funnel", "f.png"), ("categories", "c.png"), ("aspects", "a.png"), ("influence", "i.png"),
                ("benchmarks", "b.png"), ("costs", "co.png"), ("table", "t.html")]}

    summary = plots.render_run(files, outputs, ASPECTS, CATEGORIES)

    assert summary["aspects"]["iterations"] == [1, 2]
    assert summary["aspects"]["n"] == [6, 4]  # the shards of an iteration are pooled
    assert summary["influence"]["cut"] == pytest.approx([0.3, 0.1])
    assert summary["benchmarks"]["labels"] == ["original", "iter1", "final SCoder"]  # original first
    assert summary["benchmarks"]["metrics"]["humaneval (base)"] == [0.0, 12.5, 25.0]
    assert summary["costs"]["stages"] == ["extract", "sample"]
    for path in outputs.values():
        assert Path(path).stat().st_size > 1000
    json.dumps(summary, default=str)  # plain data, loggable
