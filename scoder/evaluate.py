"""The evaluate stage: the target model on every configured code benchmark.

Writes ``scores.json``::

    {"benchmarks": {"humaneval": {"base": {"pass@1": 12.5, "n": 8, "passed": 1,
                                           "dataset": "...", "protocol": "greedy, instruct prompt"}},
                    "livecodebench": {"full": {...}, "easy": {...}}, ...},
     "absent": {"mbpp": "no local data at data/evalplus/MbppPlus-v0.2.0.jsonl.gz",
                "humaneval.plus": "no HumanEval+ tests in ..."},
     "model": "<path>", "usage": {...}}

and ``completions.jsonl`` (per problem and sample: prompt, raw completion,
extracted solution, passed, reason).  The benchmarks themselves live in
``scoder.benchmarks``; every generated program runs in ``scoder.sandbox``.
"""
from __future__ import annotations

from pathlib import Path

from scoder.benchmarks import evaluate_all
from scoder.io import write_json, write_jsonl
from scoder.llm import make_generator


def evaluate_stage(model: str, generator_spec: dict, settings: dict, scores_path: str | Path,
                   completions_path: str | Path, progress_dir: str | Path | None = None) -> dict:
    """Evaluate ``model`` (served by ``generator_spec``'s backend) as ``settings`` (the
    run's ``evaluation`` section) says; write the two declared files."""
    # The OpenAI chat API cannot continue a prefilled answer, so EvalPlus's response
    # prefix is left out there (as EvalPlus's own OpenAI provider does).
    settings = {"prefill": generator_spec.get("backend") != "openai", **settings}
    holder = {}

    def start_generator():  # only if some benchmark has data
        holder["generator"] = make_generator({**generator_spec, "model": model})
        return holder["generator"]

    scores, records = evaluate_all(start_generator, settings, progress_dir)
    scores["model"] = model
    if "generator" in holder:
        scores["usage"] = holder["generator"].usage
    write_jsonl(completions_path, records)
    write_json(scores_path, scores)
    return scores
