"""The run's final snippet pool as one file, with the count at every pool stage beside it.

``results/pool_<run>.jsonl`` holds the categorized, decontaminated snippets the seed
stage split: the seeds (what the teacher writes D_p from) first, then the supply (what the
bootstrap iterations and the final synthesis draw from), each with its ``role``.
``results/pool_<run>.json`` has the run's sources and, per stage (extract -> seed), what
went in and out, the skips and drops by reason and where each stage's files and skip
log are (``pool_counts``; the run's results file carries the same counts).

    snakemake --cores 2 results/pool_tiny.jsonl     # builds the pool stages only
"""
from __future__ import annotations

from scoder.io import iter_jsonl, write_jsonl
from scoder.pool.extract import FILE_SKIPS

POOL_STAGES = ("extract", "dedup", "filter", "quality", "decontaminate", "categorize", "seed")
# What a stage's stats.json says that the counts keep (beside in/out): drops and skips by
# reason, the skip log, the define check, categories, decontamination matches...
COUNT_KEYS = ("in", "out", "dropped", "supply", "skipped", "skip_log", "files_seen", "functions_seen",
              "categories", "matched_tasks", "usage", "benchmarks", "absent", "define_check",
              "confident_per_category")
# Why a stage's snippets left where its stats give only a count (in - out).
DROP_REASONS = {"dedup": "near_duplicate", "quality": "judged_low_quality", "decontaminate": "overlaps_a_benchmark"}


def pool_counts(stats: dict[str, dict]) -> dict[str, dict]:
    """Per pool stage, the counts of its ``stats.json`` (``stats``: stage -> its stats)."""
    return {stage: {k: stats[stage][k] for k in COUNT_KEYS if k in stats[stage]}
            for stage in POOL_STAGES if stage in stats}


def left_out(stage: str, entry: dict) -> dict[str, int]:
    """Why snippets (for extract: files and functions) did not go on from a stage: its
    nonzero skips and drops by reason (the seed stage's supply is not left out)."""
    skipped = {r: n for r, n in (entry.get("skipped") or {}).items() if n}
    out = dict(skipped)
    if isinstance(entry.get("dropped"), dict):
        out.update({r: n for r, n in entry["dropped"].items() if r != "kept" and n})
    elif stage != "seed" and "in" in entry:
        n = entry["in"] - entry["out"] - sum(skipped.values())  # dedup lists its bad text as skipped
        if n:
            out[DROP_REASONS.get(stage, "dropped")] = n
    return out


def reason_label(stage: str, reason: str) -> str:
    """``syntax error (files)``: a reason in words; extract's file-level reasons say so."""
    return reason.replace("_", " ") + (" (files)" if stage == "extract" and reason in FILE_SKIPS else "")


def reasons_text(stage: str, reasons: dict[str, int]) -> str:
    """``no docstring 1,204; syntax error (files) 3``: a stage's counts by reason, largest first."""
    return "; ".join(f"{reason_label(stage, r)} {n:,}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))


def pool_markdown(pool: dict[str, dict]) -> list[str]:
    """Markdown lines of the pool's stages (``pool_counts``): in, out, what each left out by
    reason, and where the skip logs list every skipped file and function."""
    lines = ["## Snippet pool", "", "| Stage | In | Out | Left out, by reason |", "|---|---:|---:|---|"]
    for stage, st in pool.items():
        into = f"{st['files_seen']:,} files" if "files_seen" in st else f"{st['in']:,}" if "in" in st else ""
        out = f"{st['out']:,}" + (f" seeds + {st['supply']:,} supply" if stage == "seed" else "")
        lines.append(f"| {stage} | {into} | {out} | {reasons_text(stage, left_out(stage, st))} |")
    logs = [f"`{st['skip_log']}`" for st in pool.values() if "skip_log" in st]
    if logs:
        lines += ["", f"Every skipped file and function, with its reason: {', '.join(logs)}."]
    return lines


def write_pool(seeds: str, supply: str, out: str) -> dict[str, int]:
    """Write the seeds, then the supply, each record with its ``role``, to ``out`` (streamed:
    a paper-scale pool need not fit in memory); returns how many of each."""
    counts = {"seed": 0, "supply": 0}

    def records():
        for role, path in (("seed", seeds), ("supply", supply)):
            for record in iter_jsonl(path):
                counts[role] += 1
                yield {"role": role, **record}

    write_jsonl(out, records())
    return counts


def pool_summary(run: str, sources: list[dict], stats: dict[str, dict], dirs: dict[str, str],
                 roles: dict[str, int]) -> dict:
    """``results/pool_<run>.json``: the run's sources, how many snippets it has in each role
    and, per stage, its counts (``pool_counts``) and folder (``dirs``: stage -> work/<stage>/<key>)."""
    counts = pool_counts(stats)
    for stage, entry in counts.items():
        entry["dir"] = dirs[stage]
    return {"run": run, "sources": sources, "snippets": sum(roles.values()), "roles": roles,
            "stages": counts, "skip_logs": {stage: entry["skip_log"] for stage, entry in counts.items()
                                            if "skip_log" in entry}}
