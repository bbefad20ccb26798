"""The run's markdown tables: Table 3, Table 2 and one table per kind of variant run."""
from scoder.report import main_labels, schedule_label, tables_markdown, variant_file


def bench(he):
    return {"humaneval": {"base": {"pass@1": he, "n": 164}}}


def test_figure4_rows_are_the_final_probes_and_table4_rows_the_full_results():
    settings = {"bootstrap": {"iterations": [{"select": 20000}, {"select": 40000}], "selection": "influence"},
                "scorer": {"selector": "weighted"}}
    results = {"run": "q14", "model": "SCoder-Q14-DS-6.7B", "benchmarks": bench(80.5), "benchmarks_absent": {},
               "data": {"iterations": [{}, {}]}}
    probes = [{"probe": "iter0", "synthesizer": "enhanced", "benchmarks": bench(67.5)},
              {"probe": "iter2", "synthesizer": "after iteration 2", "benchmarks": bench(70.1)}]
    variants = {"q14_wo_scoring": ("table4", {"benchmarks": bench(74.9)}),
                "q14_select_random": ("figure4_selection", {"benchmarks": bench(66.0)}),
                "q14_schedule_60k": ("figure4_schedule", {"benchmarks": bench(68.0)})}
    text = tables_markdown(results, probes, variants, {"q14_select_random": "random selection"},
                           main_labels("q14", settings))
    table4 = text.split("## Table 4")[1].split("##")[0]
    assert "| q14 | 80.5 |" in table4 and "| q14_wo_scoring | 74.9 |" in table4
    left = text.split("## Figure 4, left")[1].split("##")[0]
    assert "| q14: weighted score, influence selection | 70.1 |" in left  # the main run's final probe
    assert "| random selection | 66.0 |" in left
    right = text.split("## Figure 4, right")[1]
    assert "| q14: 20K -> 40K | 70.1 |" in right and "| q14_schedule_60k | 68.0 |" in right
    assert "Other synthesizer variants" not in text


def test_a_variant_is_measured_by_its_results_or_its_final_probe():
    run = {"bootstrap": {"iterations": [{"select": 60000}]}}
    assert variant_file("q14_schedule_60k", {**run, "table": "figure4_schedule"}) == \
        "results/scoder_q14_schedule_60k_iter1.json"
    assert variant_file("q14_wo_scoring", run) == "results/scoder_q14_wo_scoring.json"
    assert schedule_label(run) == "60K -> none"
