"""MultiPL-E (HumanEval/MBPP translated to other languages) from local data.

Data (``evaluation.multipl_e``): ``path`` names either one file holding the rows of
any languages, or a folder laid out as the ``nuprl/MultiPL-E`` dataset on the
Hugging Face hub, one subset per benchmark and language::

    <path>/humaneval-js/test/0000.parquet         (newer hub layout)
    <path>/humaneval-js/multi_pl-e-test.parquet   (older hub layout)
    <path>/humaneval-js.jsonl                     (a subset as one JSONL/JSON/parquet file)

``benchmark`` (``humaneval`` default, or ``mbpp``) picks the subsets
``<benchmark>-<lang>``; the ``-<variant>`` subsets (``-reworded``/``-keep``/``-transform``/``-remove``)
are read when ``variant`` names one.  Each row is one problem with
MultiPL-E's fields ``name`` (e.g. ``HumanEval_0_has_close_elements``), ``language``
(MultiPL-E's code: ``js``, ``cpp``, ``java``, ``go``, ...), ``prompt`` (the function
signature and doc comment), ``tests`` (the test harness that follows the function)
and ``stop_tokens``.  ``languages`` lists the language codes to run; ``limit`` takes
the first problems of each language in name order.

Protocol, as MultiPL-E's own harness: the model continues the raw ``prompt`` (base
style, whatever ``evaluation.style`` says: MultiPL-E has no instruct prompt); the
completion is cut at the first stop token; ``prompt + completion + "\\n" + tests``
runs in ``scoder.sandbox`` through ``scoder.execution`` and passes when it builds
and exits with status 0.  Runners, mapped from MultiPL-E's codes to execution's
languages: ``py`` python, ``js`` javascript, ``cpp`` C++17, ``java`` (``java -ea``, so
the tests' ``assert`` statements count, as MultiPL-E's ``eval_java``), ``go`` (the
file is ``main_test.go`` built with ``go test -c`` and run, as MultiPL-E's
``go test``), ``ts`` (``tsc --target esnext`` then ``node`` on the emitted ``.js``, as
MultiPL-E's ``eval_ts``: a type error fails; the TypeScript compiler comes from npm,
``./install.sh`` pins it).  Simpler than MultiPL-E: Java runs without the ``javatuples``
jar on the class path (the few problems that import it fail to compile); a language
with no runner here (``rs``, ``cs``, ...), without data (MultiPL-E translates no C,
which SODA's tables list) or whose toolchain is missing is reported absent with the
reason, never as a zero.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scoder.execution import LANGUAGES, LanguageSpec, check_program, missing_toolchain

from .common import GenerationCache, Protocol, Task, Unavailable, generate, read_records, short, summarize

# MultiPL-E language code -> how scoder.execution builds and runs it
RUNNERS = {
    "py": LANGUAGES["python"],
    "js": LANGUAGES["javascript"],
    "cpp": LANGUAGES["cpp"],
    "java": dataclasses.replace(LANGUAGES["java"], run=tuple(
        a for r in LANGUAGES["java"].run for a in ((r, "-ea") if r == "java" else (r,)))),
    "go": dataclasses.replace(LANGUAGES["go"], source="main_test.go",
                              compile=("go", "test", "-c", "-o", "main", "{source}")),
    # not one of SODA's execution languages (§3.3.2), only MultiPL-E's; tsc is a Node.js program
    "ts": LanguageSpec("typescript", "main.ts", run=("node", "--max-old-space-size={memory_mb}", "main.js"),
                       compile=("tsc", "--target", "esnext", "{source}"), runtime_overhead_mb=1024),
}
# Languages SODA reports that MultiPL-E has no translation for
NOT_IN_MULTIPLE = {"c": "MultiPL-E translates HumanEval/MBPP into C++ (cpp), not C"}
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
FIELDS = ("name", "language", "prompt", "tests", "stop_tokens")


def load_problems(settings: dict) -> dict[str, list[dict]]:
    """language code -> its problems (rows with ``FIELDS``), for each configured
    language found in the data; ``Unavailable`` when there is no data at all."""
    path = settings.get("path")
    if not path:
        raise Unavailable("no MultiPL-E data configured (evaluation.multipl_e.path)")
    root = Path(path)
    if not root.exists():
        raise Unavailable(f"no local data at {path}")
    languages = list(settings.get("languages") or RUNNERS)
    benchmark, variant = settings.get("benchmark", "humaneval"), settings.get("variant")
    found: dict[str, list[dict]] = {}
    if root.is_file():
        rows = read_records(root)
    else:
        rows = []
        for lang in languages:
            name = f"{benchmark}-{lang}" + (f"-{variant}" if variant else "")
            files = [root / f"{name}{s}" for s in DATA_SUFFIXES if (root / f"{name}{s}").is_file()]
            if (root / name).is_dir():
                files += sorted(p for p in (root / name).rglob("*") if p.name.endswith(DATA_SUFFIXES))
            for f in files:
                rows += [{"language": lang, **r} for r in read_records(f)]
    for r in rows:
        missing = [k for k in FIELDS if k not in r]
        if missing:
            raise ValueError(f"{path}: a row lacks MultiPL-E fields {missing} (has {sorted(r)})")
        if r["language"] in languages:
            found.setdefault(r["language"], []).append({k: _plain(r[k]) for k in FIELDS})
    limit = settings.get("limit")
    return {lang: sorted(found[lang], key=lambda r: _order(r["name"]))[:limit] for lang in languages if lang in found}


def _plain(value):
    """parquet gives numpy arrays for list fields."""
    return list(value) if hasattr(value, "tolist") and not isinstance(value, str) else value


def _order(name: str):
    parts = name.split("_")
    return (parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0, name)


def truncate(completion: str, stop_tokens: list[str]) -> str:
    """The completion up to its first stop token (MultiPL-E's rule)."""
    cut = min([completion.find(s) for s in stop_tokens if s and s in completion] + [len(completion)])
    return completion[:cut]


def program(problem: dict, completion: str) -> str:
    """The program MultiPL-E runs: prompt + completion (cut) + tests."""
    return problem["prompt"] + truncate(completion, problem["stop_tokens"]) + "\n" + problem["tests"]


def unsupported(lang: str) -> str | None:
    """Why ``lang`` cannot run here (no runner, toolchain missing), else None."""
    if lang not in RUNNERS:
        return f"no runner for MultiPL-E language {lang!r} in scoder.execution (runs {sorted(RUNNERS)})"
    missing = missing_toolchain(RUNNERS[lang])
    return f"toolchain missing: {missing!r} not found (./install.sh installs it)" if missing else None


def evaluate(generator, settings: dict, protocol: Protocol, cache: GenerationCache | None = None) -> dict:
    """Complete every problem of each runnable language and run its tests."""
    problems = load_problems(settings)
    protocol = dataclasses.replace(protocol, style="base")
    absent = {lang: f"no {lang} problems in {settings['path']}"
                    + (f" ({NOT_IN_MULTIPLE[lang]})" if lang in NOT_IN_MULTIPLE else "")
              for lang in settings.get("languages") or RUNNERS if lang not in problems}
    runnable = {}
    for lang, rows in problems.items():
        why = unsupported(lang)
        if why:
            absent[lang] = why
        else:
            runnable[lang] = rows
    completions = {}
    for lang, rows in runnable.items():
        by_stop: dict[tuple, list[int]] = {}
        for i, r in enumerate(rows):
            by_stop.setdefault(tuple(r["stop_tokens"]), []).append(i)
        out = [None] * len(rows)
        for stop, idx in by_stop.items():
            got = generate(generator, [Task(rows[i]["name"], rows[i]["prompt"]) for i in idx], protocol,
                           stop=list(stop), cache=cache)
            for i, group in zip(idx, got):
                out[i] = group
        completions[lang] = out
    result = score(runnable, completions, protocol, source=str(settings["path"]),
                   timeout=settings.get("timeout", 15), memory_mb=settings.get("memory_mb", 1024))
    result["absent"].update(absent)
    return result


def score(problems: dict[str, list[dict]], completions: dict[str, list[list[str]]], protocol: Protocol, *,
          source: str = "MultiPL-E", timeout: float = 15, memory_mb: int = 1024) -> dict:
    """Scores (per language), absent languages and per-sample records of ``completions[lang][i]``
    (the samples of problem i) run with the problems' tests."""
    scores, absent, records = {}, {}, []
    jobs = [(lang, i, j) for lang, rows in problems.items() for i in range(len(rows))
            for j in range(len(completions[lang][i]))]

    def run(job):
        lang, i, j = job
        why = unsupported(lang)
        if why:
            return None
        return check_program(RUNNERS[lang], program(problems[lang][i], completions[lang][i][j]),
                             ignore_environment_errors=False, timeout=timeout, memory_mb=memory_mb)

    with ThreadPoolExecutor(max(1, protocol.workers)) as pool:
        checks = dict(zip(jobs, pool.map(run, jobs)))
    for lang, rows in problems.items():
        why = unsupported(lang)
        if why:
            absent[lang] = why
            continue
        outcomes = [[checks[(lang, i, j)].passed for j in range(len(completions[lang][i]))]
                    for i in range(len(rows))]
        scores[lang] = summarize(outcomes, protocol, f"{source} (MultiPL-E {lang})")
        for i, r in enumerate(rows):
            for j, completion in enumerate(completions[lang][i]):
                c = checks[(lang, i, j)]
                records.append({"benchmark": "multipl_e", "language": lang, "task_id": r["name"], "sample": j,
                                "prompt": r["prompt"], "completion": completion,
                                "solution": r["prompt"] + truncate(completion, r["stop_tokens"]),
                                "passed": c.passed, "reason": short(f"{c.reason}: {c.detail}" if c.detail else c.reason)})
    return {"scores": scores, "absent": absent, "records": records}
