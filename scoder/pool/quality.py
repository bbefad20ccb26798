"""Quality classification of the snippet pool (SCoder Appendix A, after StarCoder2).

An LLM reads each function with a few-shot yes/no prompt (``quality_messages``:
is the docstring enough to re-implement the function, and is the code of good
quality?).  Instead of parsing a generated answer, we read the next-token
log-probs of "Yes" and "No" and normalise them over the two, which gives a
p(yes) per function and a threshold to tune.

A model without a chat template (a base model such as the paper's StarCoder2-15B)
gets the same few-shot questions and answers as plain text
(``quality_completion_prompt``) and is scored on the next token after its last
"Answer:" cue.  The few-shot part is the same in every prompt: the backend computes
its key/value cache once and reuses it for every function (``scoder.llm.prefix``).

Batched (``batch_size`` functions per scoring call) and resumable: each finished batch
is appended to a progress ledger (``scoder.ledger``) valid under a fingerprint of the
model and the prompt, and a rerun scores only the functions missing there.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm

from ..io import digest
from ..ledger import Ledger
from ..llm import normalize_choices
from ..prompts import quality_completion_prompt, quality_messages

CHOICES = ["Yes", "No"]
# After the base-model prompt's "Answer:" cue the answer's first token carries its space.
COMPLETION_CHOICES = [" Yes", " No"]


def _prompting(generator, shots: int | None):
    """(prompt of one function, the generator's scoring call, choices): the chat prompt for
    a model with a chat template, else the plain completion prompt (a base model)."""
    if generator.has_chat_template:
        return lambda code: quality_messages(code, shots), generator.score_choices, CHOICES
    return (lambda code: quality_completion_prompt(code, shots), generator.score_continuations,
            COMPLETION_CHOICES)


def _fingerprint(model: str, prompt) -> str:
    """What determines p(yes): the model and the prompt (its few-shot part included)."""
    return digest([model, prompt("{code}")], 16, sort_keys=False)


def classify_quality(records: list[dict], generator, *, threshold: float = 0.5,
                     batch_size: int = 16, progress_path: str | os.PathLike | None = None,
                     shots: int | None = None) -> tuple[list[dict], dict]:
    """Label every record with ``quality_p_yes`` and ``quality`` ("yes" if
    p(yes) >= threshold, else "no"); returns (all records, stats).

    With ``progress_path``, p(yes) of each finished batch is appended there and
    a rerun with the same model and prompt scores only the records it lacks.
    """
    prompt, score, choices = _prompting(generator, shots)
    ledger = Ledger(progress_path) if progress_path else None
    entries = (ledger.resume(_fingerprint(generator.model, prompt), {"model": generator.model})
               if ledger is not None else [])
    known = {row["id"]: row["p_yes"] for row in entries}
    todo = [r for r in records if r["id"] not in known]
    batches = range(0, len(todo), batch_size)
    for start in tqdm(batches, desc="quality", unit="batch", disable=len(batches) <= 1):
        batch = todo[start:start + batch_size]
        scores = score([prompt(r["code"]) for r in batch], choices)
        p_yes = {r["id"]: normalize_choices(s)[choices[0]] for r, s in zip(batch, scores)}
        known.update(p_yes)
        if ledger is not None:
            ledger.append({"id": i, "p_yes": p} for i, p in p_yes.items())

    labelled = []
    for r in records:
        p = known[r["id"]]
        labelled.append({**r, "quality_p_yes": p, "quality": "yes" if p >= threshold else "no"})
    n_yes = sum(r["quality"] == "yes" for r in labelled)
    stats = {"total": len(labelled), "yes": n_yes, "no": len(labelled) - n_yes,
             "threshold": threshold, "scored": len(todo),
             "mean_p_yes": (sum(r["quality_p_yes"] for r in labelled) / len(labelled)
                            if labelled else None)}
    return labelled, stats
