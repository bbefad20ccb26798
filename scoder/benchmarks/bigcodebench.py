"""BigCodeBench (Complete / Instruct, Full / Hard) from local files.

Data (``evaluation.bigcodebench.full`` and ``.hard``): the public datasets
``bigcode/bigcodebench`` and ``bigcode/bigcodebench-hard`` as downloaded (the
parquet file of one version split, e.g. ``v0.1.2``) or their GitHub release
``BigCodeBench(-Hard)-v0.1.x.jsonl(.gz)``: one row per task with ``task_id``,
``complete_prompt``, ``instruct_prompt``, ``canonical_solution``, ``code_prompt``,
``test`` (a ``unittest`` class ``TestCases``) and ``entry_point`` (``task_func``).

Prompts follow bigcodebench's codegen: instruct models get EvalPlus's instruction
prefix with the complete prompt in a fence (Complete) or the instruct prompt as
text (Instruct) and continue the response prefix's python block; base models
complete ``complete_prompt`` (Complete only: bigcodebench refuses base models on
Instruct).  Solutions are sanitized for ``task_func`` and "calibrated" as on the
leaderboard (``code_prompt + "\\n    pass\\n" + solution``, so the task's imports
are there), then the task's ``TestCases`` run in the sandbox with ``timeout``
seconds per task (bigcodebench's 240) and ``memory_mb`` of address space (its
30 GiB).  Simpler than bigcodebench's evaluator: the sandbox has no network, so
the few tasks whose tests reach the internet fail here.  Hard tasks that are also
in the Full file reuse its completions and verdicts.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from scoder.io import digest

from .common import (harness_verdict, BASE_EOS, INSTRUCTION_PREFIX, GenerationCache, Protocol, Task, Unavailable, code_block,
                     generate, instruct_messages, read_records, require_file, sanitize, short, summarize)

SPLITS = ("complete", "instruct")
SUBSETS = ("full", "hard")
FIELDS = ("task_id", "complete_prompt", "instruct_prompt", "code_prompt", "test", "entry_point")
EXTRA_EOS = ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert ")


def load_subset(settings: dict, subset: str, limit: int | None = None) -> tuple[list[dict], str]:
    """Tasks of one subset file in task order, and where they came from."""
    path = require_file(settings.get(subset), f"BigCodeBench-{subset.capitalize()}")
    rows = read_records(path)
    missing = [k for k in FIELDS if rows and k not in rows[0]]
    if missing:
        raise ValueError(f"{path}: not a BigCodeBench file (missing fields {missing})")
    rows = sorted(rows, key=lambda r: int(str(r["task_id"]).rsplit("/", 1)[-1]))[:limit]
    return [{k: r[k] for k in (*FIELDS, "canonical_solution") if k in r} for r in rows], str(path)


def build_prompt(task: dict, split: str, protocol: Protocol):
    if protocol.style == "base":
        if split == "instruct":
            raise Unavailable("BigCodeBench-Instruct has no base-model prompt "
                              "(bigcodebench refuses direct completion for instruct tasks)")
        return task["complete_prompt"]
    if split == "complete":
        user = f"{INSTRUCTION_PREFIX}\n```\n{task['complete_prompt'].strip()}\n```\n"
    else:
        user = f"{INSTRUCTION_PREFIX}\n{task['instruct_prompt'].strip()}\n"
    return instruct_messages(user, protocol)


def extract_solution(task: dict, completion: str, style: str) -> str:
    """Sanitized program, calibrated with the task's imports and stub."""
    code = task["complete_prompt"] + completion if style == "base" else code_block(completion)
    return task["code_prompt"] + "\n    pass\n" + sanitize(code, task["entry_point"])


_HARNESS = r'''
import builtins, json, os, sys, types, unittest

# the run's nonce, for the report line only: read before the solution runs
nonce = sys.stdin.readline().strip()
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)

def report(ok, reason):
    sys.__stdout__.write(f"\n@@BCB {nonce}@@" + json.dumps({"passed": ok, "reason": reason}) + "\n")
    sys.__stdout__.flush()
    os._exit(0)

source = open("solution.py").read() + "\n" + open("test_code.py").read()
module = types.ModuleType("__test__")
module.__dict__.update({"__builtins__": builtins, "__file__": "__test__.py", "__package__": None,
                        "__doc__": None, "sys": sys, "os": os, "environ": os.environ})
sys.modules["__test__"] = module
devnull = open(os.devnull, "w")
sys.stdout = sys.stderr = devnull
try:
    exec(compile(source, "__test__.py", "exec"), module.__dict__)
    suite = unittest.TestLoader().loadTestsFromTestCase(module.TestCases)
    result = unittest.TestResult()
    suite.run(result)
except BaseException as e:
    report(False, f"{type(e).__name__}: {e}"[:300])
issues = result.failures + result.errors
if issues:
    test, trace = issues[0]
    last = [line for line in trace.strip().splitlines() if line.strip()][-1:]
    report(False, f"{len(issues)} of {result.testsRun} tests failed; {test.id().split('.')[-1]}: {last[0] if last else ''}"[:300])
report(True, "passed")
'''


def check_solution(task: dict, solution: str, *, timeout: float = 240.0, memory_mb: int | None = 30720) -> dict:
    """Run the task's ``TestCases`` against ``solution`` in the sandbox."""
    files = {"harness.py": _HARNESS, "solution.py": solution, "test_code.py": task["test"]}
    return harness_verdict(files, "BCB", timeout=timeout, memory_mb=memory_mb, max_processes=256, max_file_mb=256,
                           env={"MPLBACKEND": "Agg"})


def evaluate(generator, settings: dict, protocol: Protocol, cache: GenerationCache | None = None) -> dict:
    """Complete/Instruct x Full/Hard: each variant with data is scored, the rest absent."""
    cache = cache or GenerationCache(None)
    subsets, absent = {}, {}
    for subset in SUBSETS:
        try:
            subsets[subset] = load_subset(settings, subset, settings.get("limit"))
        except Unavailable as e:
            for split in settings.get("splits", SPLITS):
                absent[f"{split}_{subset}"] = str(e)
    if not subsets:
        raise Unavailable(next(iter(absent.values())) if absent else "no BigCodeBench data configured")
    verdicts: dict[str, dict] = {}  # a Hard task in Full is graded once
    scores, records = {}, []
    timeout, memory_mb = settings.get("timeout", 240), settings.get("memory_mb", 30720)
    for split in settings.get("splits", SPLITS):
        for subset, (tasks, source) in subsets.items():
            variant = f"{split}_{subset}"
            try:
                prompts = [build_prompt(t, split, protocol) for t in tasks]
            except Unavailable as e:
                absent[variant] = str(e)
                continue
            stop = [*BASE_EOS, *EXTRA_EOS] if protocol.style == "base" else None
            completions = generate(generator, [Task(t["task_id"], p) for t, p in zip(tasks, prompts)],
                                   protocol, stop=stop, cache=cache)
            jobs = [(i, j, extract_solution(t, c, protocol.style)) for i, (t, group) in
                    enumerate(zip(tasks, completions)) for j, c in enumerate(group)]

            def grade(job):
                task, solution = tasks[job[0]], job[2]
                key = digest([task["test"], solution])
                if key not in verdicts:
                    verdicts[key] = check_solution(task, solution, timeout=timeout, memory_mb=memory_mb)
                return verdicts[key]

            with ThreadPoolExecutor(max_workers=max(1, protocol.workers)) as pool:
                results = list(pool.map(grade, jobs))
            correct = [[False] * len(g) for g in completions]
            for (i, j, solution), v in zip(jobs, results):
                correct[i][j] = v["passed"]
                records.append({"benchmark": "bigcodebench", "variant": variant, "task_id": tasks[i]["task_id"],
                                "sample": j, "prompt": prompts[i], "completion": completions[i][j],
                                "solution": solution, "passed": v["passed"], "reason": short(v["reason"])})
            scores[variant] = summarize(correct, protocol, f"{source} (BigCodeBench-{split.capitalize()}-"
                                                           f"{subset.capitalize()}, calibrated)")
    return {"scores": scores, "absent": absent, "records": records}
