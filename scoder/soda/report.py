"""Assemble ``results/soda_<run>.json`` from the SODA stage outputs.

Benchmarks that were not run are absent (reason under ``benchmarks_absent``),
never zero; per-cycle counts come from each stage's stats; costs from the
Snakemake benchmark files (``scoder.report.benchmark_costs``).
"""
from __future__ import annotations

from scoder.io import read_json
from scoder.report import rate, benchmark_costs, last_loss, provenance

MODEL_NAMES = {"cl": "SodaCoder-CL-7B", "ds": "SodaCoder-DS-6.7B"}

# What this implementation does less than (or differently from) the paper.
SIMPLIFICATIONS = {
    "dpo_pairs": "the fault-aware pair contrasts the code blocks of the correct and the faulty answer, not the "
                 "whole answers (the faulty answers announce their errors in prose)",
    "hard_level": "'Fail and score < 2' in the paper leaves Fail with score >= 2 unassigned; feedback.hard_rule "
                  "fail_or_low (default) makes it hard, fail_and_low follows the wording",
    "level_fallbacks": "an answer in a language without a runner is levelled by its score alone; an unparsed "
                       "score levels by execution alone (Pass -> medium, Fail -> hard)",
    "update_quotas": "a level with no questions gives its share of new questions to the others",
    "cycle_schedule": "each later cycle distils only the questions the previous cycle wrote, from the previous "
                      "cycle's student (our reading of '10K newly generated questions added at each iteration'; "
                      "accumulate / student_init give the other readings)",
    "benchmarks": "MBPP(+) and MultiPL-E need local data files; without them they are absent; MultiPL-E's Java "
                  "runs without the javatuples jar; the paper's C column cannot be reproduced from MultiPL-E, "
                  "which has no C translation (reported absent)",
}
TINY_SIMPLIFICATIONS = {
    "models": "SmolLM2-135M-Instruct plays student, teacher, annotator and scorer",
    "questions": "initial questions are the SCoder tiny run's snippet supply turned into docstring tasks, not "
                 "110K Evol-Instruct questions",
    "scorer": "the scorer is SmolLM2 fine-tuned on a few SmolLM2-annotated scores; annotation and scoring read "
              "the expected points after 'Score: ' (logprob mode) because a 135M model writes no parseable analysis",
}


def build_results(run: str, settings: dict, files: dict[str, str], stages: list[dict]) -> dict:
    evaluation = read_json(files["evaluation"])
    # per benchmark and variant: greedy pass@1, sampled pass@k, model score (scoder.soda.evaluate)
    benchmarks = evaluation["benchmarks"]
    cycles = []
    for c in range(1, settings["cycles"] + 1):
        get = lambda stage, name="stats": read_json(files[f"cycle{c}_{stage}_{name}"]) \
            if f"cycle{c}_{stage}_{name}" in files else None
        teacher, split, answer, feedback, update = (get(x) for x in ("teacher", "split", "answer", "feedback", "update"))
        sft_log, dpo_log = get("sft", "log"), get("dpo", "log")
        cycles.append({
            "cycle": c,
            "new_questions": teacher["questions"],
            "teacher": {k2: teacher[k2] for k2 in ("correct_parse_rate", "faulty_parse_rate", "failed", "kept",
                                                   "pairs", "error_types_named", "languages", "contaminated",
                                                   "decontamination") if k2 in teacher},
            "split": {k2: split[k2] for k2 in ("sft", "fcl", "fcl_without_faulty")},
            "sft_final_loss": last_loss(sft_log), "dpo_final_loss": last_loss(dpo_log),
            "feedback": {"questions": feedback["questions"], "code_parse_rate": rate(answer["code_parsed"],
                                                                                      answer["questions"]),
                         "score_parse_rate": feedback.get("score_parse_rate"), "mean_score": feedback["mean_score"],
                         "execution": feedback["execution"], "pass_rate": feedback["pass_rate"],
                         "levels": feedback["levels"], "unclassified": feedback["unclassified"]},
            "update": None if update is None else {k2: update[k2] for k2 in ("requested", "written", "quotas",
                                                                             "available", "by_level", "outcomes")},
        })
    absent = dict(evaluation.get("absent", {}))
    usage = {}
    for c in range(1, settings["cycles"] + 1):
        for stage in ("teacher", "update"):
            st = read_json(files[f"cycle{c}_{stage}_stats"]) if f"cycle{c}_{stage}_stats" in files else {}
            for key, value in (st.get("usage") or {}).items():
                if isinstance(value, (int, float)):
                    usage[key] = usage.get(key, 0) + value
    gpus = {st["stage"]: settings["resources"][st["resources"]].get("gpu", 0) for st in stages}
    data = {"questions": read_json(files["questions_stats"]), "cycles": cycles}
    if "annotate_stats" in files:
        data["scorer_training"] = {**read_json(files["annotate_stats"]),
                                   "final_loss": last_loss(read_json(files["scorer_log"]))}
    simplifications = dict(SIMPLIFICATIONS)
    if settings["models"]["student"].startswith("embedded:"):
        simplifications.update(TINY_SIMPLIFICATIONS)
    simplifications.update(_ablation_notes(settings))
    return {"run": run, "method": "SODA", "model": MODEL_NAMES.get(run, f"SODA-{run}"),
            "student": settings["models"]["student"], "teacher": settings["models"]["teacher"],
            "benchmarks": benchmarks, "benchmarks_absent": absent, "data": data,
            "cost": {"teacher_tokens": {"input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")},
                     "teacher_est_cost_usd": usage.get("est_cost_usd"), **benchmark_costs(stages, gpus)},
            "simplifications": simplifications, "provenance": provenance(settings, stages),
            "stages": {f"{st['stage']}/{st['key']}": st["dir"] for st in stages}}


def _ablation_notes(settings: dict) -> dict:
    """How this run's RQ2 ablation (if any) is realised where the paper is brief."""
    out = {}
    if not settings["dpo"].get("enabled", True):
        out["wo_fault"] = ("no fault-aware contrastive learning: the SFT model is each cycle's student; the 20% of "
                           "questions meant for it are not trained on (the paper does not say where they go)")
    views = settings["feedback"].get("views", ["scoring", "execution"])
    if "scoring" not in views:
        out["wo_scoring"] = "levels from execution alone: Pass -> medium, Fail -> hard (no easy level)"
    if "execution" not in views:
        out["wo_execution"] = "levels from the score alone (>= 4 easy, >= 2 medium, else hard); nothing is run"
    if settings["update"]["by"] == "random":
        out["wo_classification"] = "new questions from questions drawn at random, with the similar-difficulty prompt"
    return out


# Table 1's columns: (header, benchmark, variant)
COLUMNS = [("Python (HumanEval)", "humaneval", "base"), ("MBPP", "mbpp", "base"),
           *[(name, "multipl_e", lang) for name, lang in
             (("Java", "java"), ("JS", "js"), ("C", "c"), ("C++", "cpp"), ("Go", "go"), ("TS", "ts"))]]


def _cell(benchmarks: dict, bench: str, variant: str, metric: str) -> str:
    value = benchmarks.get(bench, {}).get(variant, {}).get(metric)
    if value is None:
        return "–"
    return f"{value:.2f}" if metric == "model_score" else f"{value:.1f}"


def tables_markdown(results: dict, ablations: dict[str, dict], labels: dict[str, str]) -> str:
    """The run as a row block of the paper's Table 1 (Pass@1, Pass@10, model score per language)
    and, where its ablation runs' results exist, Figure 5 as a table (Pass@1)."""
    head = "| {} | " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    out = [f"# {results['model']} (SODA run `{results['run']}`)", "",
           "– = not run (see benchmarks_absent).", "", "## Table 1", "", head.format("Metric"), rule]
    for label, metric in (("Pass@1", "pass@1"), ("Pass@10", "pass@10"), ("Model Score", "model_score")):
        out.append(f"| {label} | " + " | ".join(_cell(results["benchmarks"], b, v, metric)
                                                for _, b, v in COLUMNS) + " |")
    if ablations:
        out += ["", "## Figure 5: ablations (Pass@1)", "", head.format("Run"), rule]
        rows = [(labels.get(results["run"], "SODA"), results), *((labels.get(n, n), r) for n, r in ablations.items())]
        out += [f"| {label} | " + " | ".join(_cell(r["benchmarks"], b, v, "pass@1") for _, b, v in COLUMNS) + " |"
                for label, r in rows]
    return "\n".join(out) + "\n"
