"""Synthesis: ask a model the synthesis prompt for every seed snippet.

One function serves the teacher (GPT-4o writing D_p), the synthesizer's
multi-checkpoint sampling (N samples from each of M checkpoints) and the final
synthesis:

    stats = synthesize(snippets, make_generator(spec), "dp.jsonl", n=1,
                       temperature=0.0, top_p=1.0, max_new_tokens=2048, seed=0,
                       model_name="gpt-4o-2024-08-06")

It resumes like starcoder2-self-align's ``self_ossinstruct.py``: a frozen
dataclass of the arguments that determine the output, and its fingerprint,
are stored beside the output; each finished batch is appended to a progress
ledger ``<out>.progress.jsonl`` (``scoder.ledger``, the source of truth) and to
the output files.  A rerun with the same fingerprint requests only the
snippets not yet answered and rebuilds the outputs from the ledger (so it
survives Snakemake deleting an incomplete output); another fingerprint starts
over.  Batch b is sampled with a seed derived from (seed, b), so a resumed run
writes what an uninterrupted one would have.  ``synthesize_to`` is the stage:
it makes the generator, answers in the stage's progress folder and publishes
the declared output.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from scoder.io import append_jsonl, digest, write_jsonl
from scoder.ledger import Ledger, progress_path
from scoder.llm import derive_seed, make_generator
from scoder.prompts import (SYNTHESIS_PROMPT, extract_code, format_synthesis_response, parse_synthesis,
                            synthesis_messages)


# what a batch's answers cost, the same whichever run paid for them (scoder.llm.openai_backend)
ANSWER_USAGE = ("prompt_tokens", "completion_tokens", "est_cost_usd")


@dataclass(frozen=True)
class SynthesisArgs:
    """The arguments that determine a synthesis output (and so its fingerprint)."""
    model_name: str
    checkpoint: int | None
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    batch_size: int  # batches are the unit of seeding
    prompt_sha: str

    def fingerprint(self) -> str:
        return digest(dataclasses.asdict(self), 16)


def sidecar_paths(out_path: str | os.PathLike) -> dict[str, Path]:
    """The files ``synthesize`` keeps beside its output."""
    out = Path(out_path)
    return {"samples": out,
            "failures": out.with_name(out.name + ".failures.jsonl"),
            "progress": out.with_name(out.name + ".progress.jsonl"),
            "fingerprint": out.with_name(out.name + ".fingerprint.json")}


def _resume(ledger: Ledger, paths: dict[str, Path], args: SynthesisArgs, ids: set[str]) -> list[dict]:
    """Ledger entries (answered batches) under the same fingerprint, with the output
    files rewritten from them; a new fingerprint clears everything."""
    # Keep only batches still wholly in the snippet list: the output is then a
    # function of (arguments, snippets) however the list changed between runs.
    entries = ledger.resume(
        args.fingerprint(), {"args": dataclasses.asdict(args)}, keep=lambda e: set(e["snippet_ids"]) <= ids)
    write_jsonl(paths["samples"], (r for e in entries for r in e["samples"]))
    write_jsonl(paths["failures"], (r for e in entries for r in e["failures"]))
    return entries


def _sample_id(snippet_id: str, checkpoint: int | None, j: int) -> str:
    return f"{snippet_id}#c{checkpoint}s{j}" if checkpoint is not None else f"{snippet_id}#s{j}"


def synthesize(snippets: list[dict], generator, out_path: str, *, n: int = 1,
               temperature: float, top_p: float, max_new_tokens: int, seed: int,
               model_name: str, checkpoint: int | None = None, batch_size: int = 16) -> dict:
    """Answer the synthesis prompt ``n`` times per snippet; append parsed samples
    to ``out_path`` and failures (by reason) to ``out_path + ".failures.jsonl"``
    batch by batch; resumable.  Returns the stats of the whole output (counts, and
    the tokens of every answer, however many runs it took) and, under
    ``this_attempt``, what this call did (snippets resumed, requests and cache hits)."""
    ids = [s["id"] for s in snippets]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise ValueError(f"snippet ids must be unique; {dup!r} repeats")
    args = SynthesisArgs(model_name=model_name, checkpoint=checkpoint, n=n,
                         temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                         seed=seed, batch_size=batch_size,
                         prompt_sha=hashlib.sha256(SYNTHESIS_PROMPT.encode()).hexdigest()[:16])
    paths = sidecar_paths(out_path)
    ledger = Ledger(paths["progress"], paths["fingerprint"])
    entries = _resume(ledger, paths, args, set(ids))
    done = {sid for e in entries for sid in e["snippet_ids"]}
    resumed = len(done)
    usage_before = generator.usage
    requested = 0

    for b, start in enumerate(range(0, len(snippets), batch_size)):
        batch = [s for s in snippets[start:start + batch_size] if s["id"] not in done]
        if not batch:
            continue
        before = generator.usage
        outputs = generator.generate([synthesis_messages(s["code"]) for s in batch],
                                     temperature=temperature, top_p=top_p,
                                     max_new_tokens=max_new_tokens, n=n,
                                     seed=derive_seed(seed, b))
        samples, failures = [], []
        for snippet, texts in zip(batch, outputs):
            for j, raw in enumerate(texts):
                base = {"id": _sample_id(snippet["id"], checkpoint, j),
                        "snippet_id": snippet["id"], "snippet": snippet["code"]}
                meta = {"model": model_name, "checkpoint": checkpoint, "sample": j, "raw": raw}
                if "category" in snippet:
                    meta["category"] = snippet["category"]
                result, reason = parse_synthesis(raw)
                if result is None:
                    failures.append({**base, "reason": reason, **meta})
                else:
                    samples.append({**base, **result, **meta})
        requested += len(batch) * n
        after = generator.usage
        entry = {"batch": b, "snippet_ids": [s["id"] for s in batch], "samples": samples, "failures": failures,
                 "usage": {k: after[k] - before[k] for k in ANSWER_USAGE}}
        # Ledger first: it is what a resumed run trusts.
        ledger.append([entry])
        entries.append(entry)
        append_jsonl(paths["samples"], samples)
        append_jsonl(paths["failures"], failures)
        done.update(s["id"] for s in batch)

    usage_after = generator.usage
    return {"fingerprint": args.fingerprint(), "snippets": len(snippets),
            "requested": sum(len(e["snippet_ids"]) for e in entries) * n,
            "parsed": sum(len(e["samples"]) for e in entries),
            "failed": dict(Counter(f["reason"] for e in entries for f in e["failures"])),
            "usage": {k: sum(e.get("usage", {}).get(k, 0) for e in entries) for k in ANSWER_USAGE},
            "this_attempt": {"resumed_snippets": resumed, "requested": requested,
                             "usage": {k: usage_after[k] - usage_before[k] for k in usage_after}}}


class TwoStepSynthesis:
    """Answers the synthesis prompt in two requests: first the problem, then its
    solution, returned in the two marked sections.  Not in the paper: a 135M model
    cannot follow the two-section format in one pass, so the tiny run's teacher
    uses this protocol (``teacher.protocol: two_step``) to give D_p real content."""

    PROBLEM = ("Here is a Python function:\n```python\n{code}\n```\n"
               "Write a short, self-contained programming task (2-4 sentences) asking someone to "
               "implement a similar function. Only write the task.")
    SOLUTION = "{problem}\n\nWrite the Python solution in a ```python code block."

    def __init__(self, generator):
        self.generator = generator

    @property
    def usage(self) -> dict:
        return self.generator.usage

    def generate(self, conversations, *, n: int = 1, **sampling) -> list[list[str]]:
        codes = [extract_code(c[-1]["content"]) for c in conversations]
        problems = self.generator.generate(
            [[{"role": "user", "content": self.PROBLEM.format(code=code)}] for code in codes], n=n, **sampling)
        flat = [p for group in problems for p in group]
        solutions = self.generator.generate(
            [[{"role": "user", "content": self.SOLUTION.format(problem=p.strip())}] for p in flat], n=1, **sampling)
        answers = [format_synthesis_response(p.strip(), s[0].strip()) for p, s in zip(flat, solutions)]
        return [answers[i * n:(i + 1) * n] for i in range(len(conversations))]


def synthesize_to(out_path: str, snippets: list[dict], generator_spec: dict, sampling: dict, *,
                  model_name: str, checkpoint: int | None = None, protocol: str = "single") -> dict:
    """The synthesis stage (teacher, sampling, final synthesis): answer in the stage's progress
    folder with the generator ``generator_spec`` describes, then publish ``out_path``."""
    generator = make_generator(generator_spec)
    if protocol == "two_step":
        generator = TwoStepSynthesis(generator)
    progress = progress_path(out_path)
    progress.parent.mkdir(parents=True, exist_ok=True)
    stats = synthesize(snippets, generator, str(progress), n=sampling.get("n", 1),
                       temperature=sampling.get("temperature", 0.0), top_p=sampling.get("top_p", 1.0),
                       max_new_tokens=sampling.get("max_new_tokens", 512), seed=sampling.get("seed", 0),
                       model_name=model_name, checkpoint=checkpoint,
                       batch_size=generator_spec.get("batch_size", 16))
    shutil.copyfile(progress, out_path)
    return stats
