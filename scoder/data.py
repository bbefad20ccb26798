"""Glue between stages: snippet supply slices, training samples and chat examples, stand-in data.

Formats of a training example (``format`` in the training settings):
- ``synthesis``: user = the synthesis prompt over the snippet, assistant = the
  problem and solution in the two marked sections (trains a *synthesizer*).
- ``instruction``: user = the problem, assistant = the solution (trains the
  reference model on D_p, as eq. 3 defines d = (q, s), and the target model).
- ``chat``: the sample already holds its ``messages`` (the scorer: scoring prompt,
  answered with the teacher's scores).
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from scoder.io import read_jsonl
from scoder.prompts import format_synthesis_response, synthesis_messages


def supply_slice(supply: list[dict], start: int, count: int) -> list[dict]:
    """Snippets [start, start+count) of the supply; wraps around when the supply is
    shorter (only in tiny runs; the results file reports the supply size)."""
    if not supply:
        raise ValueError("the snippet supply is empty: lower pool.seed.per_category or add sources")
    return [supply[(start + i) % len(supply)] for i in range(count)]


def load_training_samples(paths: list[str], external: str | None = None, size: int | None = None) -> list[dict]:
    """Instruction samples from stage outputs, plus an external dataset (evol-codealpaca
    style `instruction`/`output` fields, or `problem`/`solution`)."""
    samples = [r for p in paths for r in read_jsonl(p)]
    if external:
        if not Path(external).exists():
            raise FileNotFoundError(
                f"{external} does not exist (named by target.phase1.data or scorer.data.sources). Download "
                "evol-codealpaca-v1 (theblackcat102/evol-codealpaca-v1) as JSONL to that path, or use "
                "standin:docstring-pairs.")
        for r in read_jsonl(external):
            samples.append({"problem": r.get("problem", r.get("instruction")),
                            "solution": r.get("solution", r.get("output"))})
    return samples[:size] if size else samples


def to_chat(sample: dict, format: str) -> dict:
    if format == "synthesis":
        messages = synthesis_messages(sample["snippet"]) + [
            {"role": "assistant", "content": format_synthesis_response(sample["problem"], sample["solution"])}]
    elif format == "instruction":
        messages = [{"role": "user", "content": sample["problem"]},
                    {"role": "assistant", "content": sample["solution"]}]
    elif format == "chat":  # already a conversation (the scorer's examples)
        messages = sample["messages"]
    else:
        raise ValueError(f"unknown training format {format!r} (synthesis | instruction | chat)")
    return {"messages": messages}


def docstring_pairs(snippets: list[dict], size: int | None) -> list[dict]:
    """Stand-in for evol-codealpaca-v1 where it is unavailable: each snippet becomes
    (problem: signature + docstring as a task, solution: the function in a code block)."""
    out = []
    for snip in snippets[:size] if size else snippets:
        try:
            fn = ast.parse(textwrap.dedent(snip["code"])).body[0]
            signature = f"def {fn.name}({ast.unparse(fn.args)})"
        except (SyntaxError, IndexError, AttributeError):
            continue
        problem = (f"Write a Python function `{signature}`.\n\n"
                   f"{textwrap.dedent(snip.get('docstring') or '').strip()}")
        out.append({"id": f"standin:{snip['id']}", "problem": problem,
                    "solution": f"```python\n{snip['code'].rstrip()}\n```"})
    return out
