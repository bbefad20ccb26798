"""What every benchmark adapter shares: the decoding protocol, generation through the
project's LLM interface (resumable), the unbiased pass@k estimator, code-block
extraction and the per-variant summary written to ``scores.json``.
"""
from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from scoder.io import append_jsonl, digest, iter_jsonl

STYLES = ("base", "instruct")
# EvalPlus 0.3.1 codegen.py (BigCodeBench uses the same two lines): the instruction
# before the task and the start of the answer that generation continues.
INSTRUCTION_PREFIX = ("Please provide a self-contained Python script that solves the following "
                      "problem in a markdown code block:")
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the "
                   "problem and passes corresponding tests:")
# EvalPlus/BigCodeBench provider/utility.py: stop strings of every direct completion
BASE_EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n?")


class Unavailable(Exception):
    """A benchmark (or one variant) cannot be run: its reason goes to ``absent``."""


@dataclass(frozen=True)
class Protocol:
    """How completions are drawn: prompt style and decoding.

    Greedy (``temperature`` 0, ``n`` 1) gives pass@1 as in the papers' tables; ``n``
    samples at a temperature give pass@k for each ``k`` <= n by the unbiased estimator
    (SODA: n >= 10 at temperature 0.2, top-p 0.95 for pass@10)."""
    style: str = "instruct"
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    k: tuple = (1,)
    max_new_tokens: int = 768
    seed: int = 0
    prefill: bool = True  # continue EvalPlus's response prefix (not possible over the OpenAI API)
    workers: int = 2      # sandboxed test runs at a time

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"evaluation.style: {self.style!r} is not one of {STYLES}")
        if self.temperature <= 0 and self.n != 1:
            raise ValueError(f"evaluation.sampling: n={self.n} greedy samples are all the same; "
                             "use n: 1 with temperature 0, or a temperature > 0")
        if not self.k or max(self.k) > self.n or min(self.k) < 1:
            raise ValueError(f"evaluation.sampling.k: {list(self.k)} needs 1 <= k <= n (n={self.n})")

    @classmethod
    def from_settings(cls, settings: dict) -> "Protocol":
        """From the ``evaluation`` config section (``style``, ``sampling``, ...)."""
        sampling = settings.get("sampling", {})
        return cls(style=settings.get("style", "instruct"), n=sampling.get("n", 1),
                   temperature=sampling.get("temperature", 0.0), top_p=sampling.get("top_p", 1.0),
                   k=tuple(sampling.get("k", [1])), max_new_tokens=settings.get("max_new_tokens", 768),
                   seed=sampling.get("seed", 0), prefill=settings.get("prefill", True),
                   workers=settings.get("workers", 2))

    def describe(self) -> str:
        decoding = ("greedy" if self.temperature <= 0 else
                    f"{self.n} samples at temperature {self.temperature:g}, top-p {self.top_p:g}")
        return f"{decoding}, {self.style} prompt"


@dataclass
class Task:
    """One problem to generate for: its id, the model input and anything grading needs."""
    task_id: str
    prompt: object            # chat messages (instruct) or raw text (base)
    data: dict = field(default_factory=dict)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` of ``n`` samples correct (Chen et al., 2021):
    1 - C(n-c, k) / C(n, k), as a product so large n does not overflow."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def summarize(correct: list[list[bool]], protocol: Protocol, dataset: str) -> dict:
    """The figures of one benchmark variant: pass@k in percent over the problems
    (``correct`` holds the outcome of each sample of each problem)."""
    if not correct:
        raise Unavailable("no problems")
    out = {}
    for k in protocol.k:
        out[f"pass@{k}"] = 100.0 * sum(pass_at_k(len(c), sum(c), k) for c in correct) / len(correct)
    out.update({"n": len(correct), "passed": sum(any(c) for c in correct),
                "dataset": dataset, "protocol": protocol.describe()})
    if protocol.n > 1:
        out.update({"samples_per_problem": protocol.n, "correct_samples": sum(map(sum, correct))})
    return out


def instruct_messages(user: str, protocol: Protocol, system: str | None = None) -> list[dict]:
    """Chat input: the user turn, then (with ``prefill``) EvalPlus's response prefix
    opening a python block, which generation continues."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    if protocol.prefill:
        messages.append({"role": "assistant", "content": f"{RESPONSE_PREFIX}\n```python\n"})
    return messages


class GenerationCache:
    """Completions already drawn, kept in a JSONL file so an interrupted evaluation
    asks only for the rest.  Keyed by the model input and the decoding settings."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.done: dict[str, list[str]] = {}
        if self.path and self.path.exists():
            for r in iter_jsonl(self.path):
                self.done[r["key"]] = r["completions"]

    @staticmethod
    def key(prompt, protocol: Protocol, stop) -> str:
        spec = [prompt, protocol.style, protocol.n, protocol.temperature, protocol.top_p,
                protocol.max_new_tokens, protocol.seed, list(stop or [])]
        return digest(spec, 24)

    def add(self, items: dict[str, list[str]]) -> None:
        self.done.update(items)
        if self.path:
            append_jsonl(self.path, ({"key": k, "completions": v} for k, v in items.items()))


def generate(generator, tasks: list[Task], protocol: Protocol, *, stop: list[str] | None = None,
             cache: GenerationCache | None = None, chunk: int = 256) -> list[list[str]]:
    """``protocol.n`` completions per task through the project's LLM interface: chat
    ``generate`` for instruct prompts, raw ``complete`` (cut at ``stop``) for base ones."""
    cache = cache or GenerationCache(None)
    keys = [GenerationCache.key(t.prompt, protocol, stop) for t in tasks]
    todo = [i for i, k in enumerate(keys) if k not in cache.done]
    sampling = dict(temperature=protocol.temperature, top_p=protocol.top_p,
                    max_new_tokens=protocol.max_new_tokens, n=protocol.n, seed=protocol.seed)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        prompts = [tasks[i].prompt for i in part]
        if protocol.style == "base":
            outputs = generator.complete(prompts, stop=list(stop or []), **sampling)
        else:
            outputs = generator.generate(prompts, **sampling)
        cache.add({keys[i]: list(o) for i, o in zip(part, outputs)})
    return [cache.done[k] for k in keys]


def code_block(text: str, last: bool = False) -> str:
    """The program in a model's answer: the code before a closing fence when the answer
    continued a prefilled ```` ```python ```` line, else the first python block (the last
    block with ``last``, as LiveCodeBench reads answers), else the whole text."""
    fences = list(_FENCE.finditer(text))
    if not fences:
        return text
    head = text[:fences[0].start()]
    if head.strip() and not fences[0].group(1) and _parses(head):
        return head  # the answer started inside the response prefix's open block
    if last and len(fences) >= 2:
        return text[fences[-2].end():fences[-1].start()]
    openers = [i for i, m in enumerate(fences) if m.group(1).lower() in ("python", "py", "python3")]
    i = openers[0] if openers else 0
    end = fences[i + 1].start() if i + 1 < len(fences) else len(text)
    return text[fences[i].end():end]


def _parses(code: str) -> bool:
    import ast
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def sanitize(code: str, entry_point: str | None) -> str:
    """EvalPlus's sanitizer: keep imports and what the entry point needs, drop demo code."""
    from evalplus.sanitize import sanitize as evalplus_sanitize
    return evalplus_sanitize(code, entrypoint=entry_point) or code


def read_records(path: str | Path) -> list[dict]:
    """Rows of a local dataset file: JSONL (optionally .gz), a JSON list, or parquet."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pandas as pd
        return pd.read_parquet(path).to_dict(orient="records")
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        if name.endswith((".json", ".json.gz")):
            return json.load(f)
        return [json.loads(line) for line in f if line.strip()]


def require_file(path: str | None, what: str) -> Path:
    """The configured data file, or ``Unavailable`` naming what is missing."""
    if not path:
        raise Unavailable(f"no {what} data configured")
    if not Path(path).exists():
        raise Unavailable(f"no local data at {path}")
    return Path(path)


def short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit // 2] + " ... " + text[-limit // 2:]


def harness_verdict(files: dict[str, str], tag: str, *, timeout: float, memory_mb: int | None,
                    on_death: str | None = None, **limits) -> dict:
    """Run ``harness.py`` among ``files`` in the sandbox and read its JSON verdict.

    The harness prints ``@@<tag> <nonce>@@<json>``; the nonce, handed over on stdin, is
    random per run, so a solution cannot print a passing verdict of its own.  A harness
    that dies without a verdict fails the solution with the reason (``on_death`` or the
    kill reason / exit code); a sandbox that cannot be set up raises, so a broken
    sandbox never reads as a 0% model."""
    import secrets
    import sys

    from scoder.sandbox import run_command

    nonce = secrets.token_hex(16)
    result = run_command([sys.executable, "-I", "harness.py"], files, stdin=nonce + "\n", timeout=timeout,
                         memory_mb=memory_mb, reach=[sys.base_prefix, sys.prefix], **limits)
    if result.setup_error:
        raise RuntimeError(f"sandbox failed: {result.setup_error}")
    head = f"@@{tag} {nonce}@@"
    marker = result.stdout.rfind(head)
    if marker < 0:
        died = f"{on_death}: {result.stderr[-200:]}" if on_death else f"exit code {result.returncode}"
        return {"passed": False, "reason": result.killed_reason or died}
    return json.loads(result.stdout[marker + len(head):].splitlines()[0])
