"""Resumable prompting: ask a model one prompt per record, keeping a ledger.

Each finished batch is appended to the ledger ``<progress>.jsonl`` (``scoder.ledger``);
a fingerprint of what determines the answers (model, prompt template, sampling) is kept
beside it.  A rerun with the same fingerprint asks only the batches it has not finished
(an interrupted teacher or student job resumes); another fingerprint starts
over.  Batch ``b`` is sampled with ``derive_seed(seed, b)`` so a resumed run
writes what an uninterrupted one would have.  Each batch's token usage is kept with its
first entry, so the returned answers' ``usage`` counts every answer, however many runs
it took (as ``scoder.synthesis`` does).

    answers = ask(records, lambda r: correct_messages(r["question"]), generator,
                  "work/soda_teacher/KEY/progress/correct", args={...}, sampling={...})
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from scoder.io import digest
from scoder.ledger import Ledger
from scoder.llm import derive_seed
from scoder.synthesis import ANSWER_USAGE


class Answers(dict):
    """``{record id: [n answers]}`` with ``usage``: the tokens (and estimated cost) of every
    answer, including those a resumed run found in the ledger."""
    usage: dict


def total_usage(*answers: Answers) -> dict:
    """The summed ``usage`` of several ``ask`` calls."""
    return {k: sum(a.usage.get(k, 0) for a in answers) for k in ANSWER_USAGE}


def ask(records: list[dict], prompt: Callable[[dict], list[dict]], generator, progress: str | Path, *,
        args: dict, sampling: dict, batch_size: int = 8, n: int = 1) -> Answers:
    """``{record id: [n answers]}`` for every record; resumable through ``progress``."""
    progress = Path(progress)
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique for resumable prompting")
    ledger = Ledger(progress.with_suffix(".jsonl"))  # its fingerprint in <progress>.fingerprint.json
    fp = digest({"args": args, "sampling": sampling, "batch_size": batch_size, "n": n}, 16, default=str)
    entries = ledger.resume(fp, {"args": args, "sampling": sampling})
    done = {e["id"]: e["answers"] for e in entries}
    usage = [e["usage"] for e in entries if "usage" in e]
    batches = [records[i:i + batch_size] for i in range(0, len(records), batch_size)]
    for b, batch in enumerate(tqdm(batches, desc=progress.name, unit="batch", disable=len(batches) <= 1)):
        if all(r["id"] in done for r in batch):
            continue
        before = generator.usage
        outputs = generator.generate([prompt(r) for r in batch], n=n, seed=derive_seed(sampling.get("seed", 0), b),
                                     temperature=sampling.get("temperature", 0.0), top_p=sampling.get("top_p", 1.0),
                                     max_new_tokens=sampling.get("max_new_tokens", 512))
        after = generator.usage
        new = [{"id": r["id"], "answers": list(o)} for r, o in zip(batch, outputs)]
        new[0]["usage"] = {k: after.get(k, 0) - before.get(k, 0) for k in ANSWER_USAGE}
        ledger.append(new)
        usage.append(new[0]["usage"])
        done.update((e["id"], e["answers"]) for e in new)
    answers = Answers((i, done[i]) for i in ids)
    answers.usage = {k: sum(u.get(k, 0) for u in usage) for k in ANSWER_USAGE}
    return answers
