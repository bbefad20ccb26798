"""Prompts: the synthesis prompt and its parser, and the quality classifier prompt.

* ``synthesis_messages`` — the OSS-Instruct-style prompt (Magicoder; SCoder's
  Figure 6 is "inspired by" it): from a code snippet, write a self-contained
  problem and a correct Python solution in two marked sections.
* ``format_synthesis_response`` / ``parse_synthesis`` — the canonical answer
  (the synthesizer's training target) and a forgiving parser for what models
  actually write, which names why an answer failed.
* ``quality_messages`` — few-shot yes/no: is the docstring enough to
  re-implement the function, and is the code of good quality (the StarCoder2
  pipeline's classifier, here as a chat prompt); ``quality_completion_prompt`` is
  the same as plain text for base models without a chat template.
"""
from __future__ import annotations

import ast
import re

PROBLEM_HEADER = "[Problem Description]"
SOLUTION_HEADER = "[Solution]"

SYNTHESIS_PROMPT = """You are exceptionally skilled at writing high-quality programming problems and precise solutions.

Take inspiration from the code snippet below to write a high-quality programming problem and a correct Python solution. Give your answer in exactly two sections, headed [Problem Description] and [Solution].

Code snippet for inspiration:
```python
{code}
```

Guidelines for each section:
1. [Problem Description]: make it **completely self-contained**: state everything a reader needs to understand and solve the problem (inputs, outputs, constraints, and any specific variables or code it relies on), assuming only common programming knowledge.
2. [Solution]: give a comprehensive, **correct** Python solution to the problem you wrote, with the code in a ```python code block."""


def synthesis_messages(snippet_code: str) -> list[dict]:
    """The synthesis prompt for one seed snippet, as a single user turn."""
    # One user turn (no system turn) works with every chat template.
    return [{"role": "user", "content": SYNTHESIS_PROMPT.format(code=snippet_code.strip("\n"))}]


def format_synthesis_response(problem: str, solution: str) -> str:
    """The canonical assistant answer: both sections under their headers."""
    return f"{PROBLEM_HEADER}\n{problem.strip()}\n\n{SOLUTION_HEADER}\n{solution.strip()}"


# A section header on its own line, in the forms models write it:
# "[Solution]", "## Problem Description", "**Problem Statement:**", "Solution:".
_HEADER = re.compile(
    r"^[ \t]*(?P<hashes>\#{1,6})?[ \t]*(?P<bold>\*\*|__)?[ \t]*(?P<open>\[)?[ \t]*"
    r"(?P<name>problem(?:[ \t]+(?:description|statement))?|solution)\b[ \t]*(?P<close>\])?"
    r"[ \t]*(?P<colon1>:)?[ \t]*(?:\*\*|__)?[ \t]*(?P<colon2>:)?[ \t]*(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
_CODE_BLOCK = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^[ \t]*```",
                         re.MULTILINE | re.DOTALL)


def _headers(text: str) -> list[tuple[str, re.Match]]:
    """("problem" | "solution", match) for every line that is a section header."""
    found = []
    for m in _HEADER.finditer(text):
        bracketed = bool(m["open"] and m["close"])
        decorated = bool(m["hashes"] or m["bold"])
        colon = bool(m["colon1"] or m["colon2"])
        # Unmarked words are prose ("Solution is simple"), not headers.
        if bracketed or decorated or colon or not m["rest"].strip():
            found.append(("solution" if m["name"].lower() == "solution" else "problem", m))
    return found


def _unclosed_fence(text: str) -> bool:
    return len(_FENCE.findall(text)) % 2 == 1


def extract_code(text: str) -> str:
    """The Python code of a markdown answer: its python (or untagged) fenced blocks."""
    blocks = [m for m in _CODE_BLOCK.finditer(text)]
    python = [m["code"] for m in blocks if m["lang"].lower() in ("", "python", "py", "python3")]
    return "\n\n".join(code.strip("\n") for code in python if code.strip())


def looks_like_code(text: str) -> bool:
    """Unfenced text that parses as Python and defines or computes something."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(not isinstance(node, ast.Expr) for node in tree.body)


def parse_synthesis(text: str) -> tuple[dict | None, str | None]:
    """({"problem", "solution"}, None) from a synthesis answer, or (None, reason)
    with reason in missing_problem, empty_problem, missing_solution, truncated,
    empty_code.  Prose before the first header is ignored; a repeated problem
    section after the solution (small models loop) is cut off."""
    headers = _headers(text)
    problem_at = next((i for i, (kind, _) in enumerate(headers) if kind == "problem"), None)
    if problem_at is None:
        return None, "missing_problem"
    problem_match = headers[problem_at][1]
    solution_at = next((i for i in range(problem_at + 1, len(headers))
                        if headers[i][0] == "solution"), None)
    if solution_at is None:
        return None, "truncated" if _unclosed_fence(text) else "missing_solution"
    solution_match = headers[solution_at][1]
    repeat = next((m for kind, m in headers[solution_at + 1:] if kind == "problem"), None)

    problem = text[problem_match.start("rest"):solution_match.start()].strip()
    end = repeat.start() if repeat is not None else len(text)
    solution = text[solution_match.start("rest"):end].strip()
    if not problem:
        return None, "empty_problem"
    if _unclosed_fence(solution):
        return None, "truncated"
    if not _FENCE.search(solution):
        if not solution:
            return None, "missing_solution"
        if not looks_like_code(solution):
            return None, "empty_code"
        solution = f"```python\n{solution}\n```"  # bare code: keep it, fenced
    if not extract_code(solution):
        return None, "empty_code"
    return {"problem": problem, "solution": solution}, None


# --- quality classifier -----------------------------------------------------

QUALITY_QUESTION = """Here is a Python function, with its docstring shown separately.

Docstring:
```
{doc}
```

Code:
```python
{code}
```

Do not run the code. Is the docstring, on its own, enough to re-implement the function, does it match what the code does, and is the code of good quality (readable, sensible names, no obvious defects)? Answer "Yes" or "No" first, then give a one-sentence reason."""

# Written for this project; two of each answer, alternating, so neither
# answer is favoured by position.
QUALITY_FEW_SHOTS = [
    ('''def process(data, flag=False):
    """Helper used by the pipeline."""
    out = []
    for row in data:
        if flag and row.get("skip"):
            continue
        out.append({k.lower(): v for k, v in row.items()})
    return out''',
     "No. The docstring does not say what the function does: nothing about skipping rows or lower-casing keys."),
    ('''def celsius_to_fahrenheit(celsius):
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32''',
     "Yes. The conversion is fully specified by the docstring and the code is clear."),
    ('''def average(values):
    """Return the median of a list of numbers."""
    total = 0
    for v in values:
        total = total + v
    return total / len(values)''',
     "No. The docstring promises the median but the code computes the mean."),
    ('''def chunk(items, size):
    """Split ``items`` into consecutive lists of length ``size``.

    The last list holds the remainder and may be shorter; ``size`` must be positive.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    return [items[i:i + size] for i in range(0, len(items), size)]''',
     "Yes. The docstring states the behaviour, the remainder and the error case, and the code is idiomatic."),
]


def split_docstring(code: str) -> tuple[str, str]:
    """(docstring, code without it) of the first function or class in ``code``;
    ("", code) when there is none or the code does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "", code
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            first = node.body[0]
            if doc is None or first.lineno == node.lineno:
                return "", code
            lines = code.splitlines()
            del lines[first.lineno - 1:first.end_lineno]
            return doc.strip(), "\n".join(lines)
    return "", code


def _quality_question(code: str) -> str:
    doc, body = split_docstring(code)
    return QUALITY_QUESTION.format(doc=doc or "(no docstring)", code=body.strip("\n"))


def quality_messages(code: str, shots: int | None = None) -> list[dict]:
    """Few-shot yes/no conversation judging the docstring and the code of one function
    (``shots`` examples, all by default; fewer keeps prompts short for small models)."""
    messages = []
    for example, answer in QUALITY_FEW_SHOTS[:shots]:
        messages.append({"role": "user", "content": _quality_question(example)})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": _quality_question(code)})
    return messages


# A base model (no chat template, e.g. StarCoder2-15B) continues plain text: the same
# questions and answers, each answer after this cue, the next token after the last one
# being " Yes" or " No".
QUALITY_ANSWER_CUE = "Answer:"


def quality_completion_prompt(code: str, shots: int | None = None) -> str:
    """The few-shot yes/no prompt of ``quality_messages`` as plain text for a base model,
    ending with the answer cue for the function to judge."""
    blocks = [f"{_quality_question(example)}\n\n{QUALITY_ANSWER_CUE} {answer}"
              for example, answer in QUALITY_FEW_SHOTS[:shots]]
    blocks.append(f"{_quality_question(code)}\n\n{QUALITY_ANSWER_CUE}")
    return "\n\n\n".join(blocks)
