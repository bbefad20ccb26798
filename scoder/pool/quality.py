"""Quality classification of the snippet pool (SCoder Appendix A, after StarCoder2).

An LLM reads each function with a few-shot yes/no prompt (``quality_messages``:
is the docstring enough to re-implement the function, and is the code of good
quality?).  Instead of parsing a generated answer, we read the next-token
log-probs of "Yes" and "No" and normalise them over the two, which gives a
p(yes) per function and a threshold to tune.

Batched (``batch_size`` conversations per ``score_choices`` call) and resumable: each
finished batch is appended to a progress ledger (``scoder.ledger``) valid under a
fingerprint of the model and the prompt, and a rerun scores only the functions missing
there.

Simpler than the paper: the paper's classifier is StarCoder2-15B (a base
model); any chat model configured as the generator is used here.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm

from ..io import digest
from ..ledger import Ledger
from ..llm import normalize_choices
from ..prompts import quality_messages

CHOICES = ["Yes", "No"]


def _fingerprint(model: str, shots: int | None) -> str:
    """What determines p(yes): the model and the prompt (its few-shot part included)."""
    prompt = quality_messages("{code}", shots)
    return digest([model, prompt], 16, sort_keys=False)


def classify_quality(records: list[dict], generator, *, threshold: float = 0.5,
                     batch_size: int = 16, progress_path: str | os.PathLike | None = None,
                     shots: int | None = None) -> tuple[list[dict], dict]:
    """Label every record with ``quality_p_yes`` and ``quality`` ("yes" if
    p(yes) >= threshold, else "no"); returns (all records, stats).

    With ``progress_path``, p(yes) of each finished batch is appended there and
    a rerun with the same model and prompt scores only the records it lacks.
    """
    ledger = Ledger(progress_path) if progress_path else None
    entries = ledger.resume(_fingerprint(generator.model, shots), {"model": generator.model}) if ledger is not None else []
    known = {row["id"]: row["p_yes"] for row in entries}
    todo = [r for r in records if r["id"] not in known]
    batches = range(0, len(todo), batch_size)
    for start in tqdm(batches, desc="quality", unit="batch", disable=len(batches) <= 1):
        batch = todo[start:start + batch_size]
        scores = generator.score_choices([quality_messages(r["code"], shots) for r in batch], CHOICES)
        p_yes = {r["id"]: normalize_choices(s)["Yes"] for r, s in zip(batch, scores)}
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
