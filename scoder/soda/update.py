"""Stage III, feedback-based knowledge update (SODA §3.4).

The teacher writes the next cycle's new questions from questions of each
difficulty level in the ratio easy:medium:hard = 1:1:2 (10K per cycle in the
paper): for hard and medium questions a new question of similar topic and
difficulty (Fig. 3D, an in-breadth evolving prompt), for easy ones a more
challenging one.

Not in the paper (it does not say): a level with no questions gives its share
to the other levels in proportion to their ratio; a level with fewer questions
than its share is sampled again in a new seeded order, each draw asking the
teacher afresh.  ``by: random`` is the paper's "w/o classification" ablation.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from scoder.soda.generate import ask

SYSTEM = "You are a creative question writer."
_HEAD = ("Your goal is to draw inspiration from the #Given Instruction# to create a brand-new and high-quality "
         "instruction.\nMake the new instruction more rare and different with the #Given Instruction#, but the new "
         "instruction should belong to the same domain as the #Given Instruction#.\n")
_TAIL = ("\nThe new instruction must be reasonable and must be understood and responded to by humans. The new "
         "instruction should start with \"#Created Instruction#:\".\n\n#Given Instruction#: {question}")
SIMILAR = "The length and difficulty level of the new instruction MUST be similar to that of the #Given Instruction#."
HARDER = ("The length of the new instruction MUST be similar to that of the #Given Instruction#, and the new "
          "instruction MUST be more challenging than the #Given Instruction#.")
PROMPTS = {"easy": _HEAD + HARDER + _TAIL, "medium": _HEAD + SIMILAR + _TAIL, "hard": _HEAD + SIMILAR + _TAIL}
LEVELS = ("easy", "medium", "hard")
_MARKER = re.compile(r"#*\s*created\s+instruction\s*#*\s*:?", re.I)
_TRAILER = re.compile(r"\n\s*#*\s*(?:given\s+instruction|created\s+instruction)\s*#*\s*:", re.I)


def new_question_messages(question: str, level: str) -> list[dict]:
    """Fig. 3D for a hard or medium question; its "more challenging" variant for an easy one."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPTS[level].format(question=question.strip())}]


def quotas(total: int, ratio: dict[str, float], available: dict[str, int]) -> dict[str, int]:
    """New questions per level: ``total`` split by ``ratio`` (largest remainder) over the
    levels that have questions; an empty level's share goes to the others."""
    live = {lv: float(ratio.get(lv, 0)) for lv in LEVELS if available.get(lv, 0) > 0 and ratio.get(lv, 0) > 0}
    if not live:
        live = {lv: 1.0 for lv in LEVELS if available.get(lv, 0) > 0}
    if not live or total <= 0:
        return {lv: 0 for lv in LEVELS}
    weight = sum(live.values())
    exact = {lv: total * w / weight for lv, w in live.items()}
    out = {lv: int(exact.get(lv, 0)) for lv in LEVELS}
    for lv in sorted(live, key=lambda lv: (-(exact[lv] - out[lv]), LEVELS.index(lv)))[:total - sum(out.values())]:
        out[lv] += 1
    return out


def draw_sources(levelled: list[dict], total: int, ratio: dict[str, float], *, seed: int,
                 by: str = "difficulty") -> tuple[list[dict], dict]:
    """The source questions of the new ones: [{"level", "source"...}] and the quotas used."""
    rng = np.random.default_rng(seed)
    if by == "random":  # w/o classification: uniform over all questions, similar-difficulty prompt
        pool = {"medium": list(levelled)}
        want = {"easy": 0, "medium": total if levelled else 0, "hard": 0}
    elif by == "difficulty":
        pool = {lv: [r for r in levelled if r.get("level") == lv] for lv in LEVELS}
        want = quotas(total, ratio, {lv: len(v) for lv, v in pool.items()})
    else:
        raise ValueError(f"update.by must be difficulty or random, got {by!r}")
    draws = []
    for lv in LEVELS:
        items, need = pool.get(lv, []), want.get(lv, 0)
        order: list[int] = []
        while len(order) < need:
            order += list(rng.permutation(len(items)))
        for j, i in enumerate(order[:need]):
            src = items[i]
            draws.append({"id": f"{src['id']}>{lv[0]}{j}", "level": lv, "source_id": src["id"],
                          "source_question": src["question"], "question": src["question"]})
    return draws, {"quotas": want, "available": {lv: len(pool.get(lv, [])) for lv in LEVELS}}


def parse_created(text: str, source: str) -> tuple[str | None, str]:
    """(new question, "parsed" | "no_marker") or (None, reason): the text after
    "#Created Instruction#:" (the whole answer when the marker is missing), cut
    where the model starts another instruction; empty or a copy of the source fails."""
    if not text or not text.strip():
        return None, "empty"
    m = _MARKER.search(text)
    body = text[m.end():] if m else text
    cut = _TRAILER.search(body)
    body = (body[:cut.start()] if cut else body).strip()
    if not body:
        return None, "empty"
    if " ".join(body.split()).lower() == " ".join(source.split()).lower():
        return None, "copy"
    return body, "parsed" if m else "no_marker"


def write_questions(levelled: list[dict], generator, progress: str, *, total: int, ratio: dict[str, float],
                    cycle: int, sampling: dict, model_name: str, by: str = "difficulty", seed: int = 0,
                    batch_size: int = 8, existing: set[str] = frozenset()) -> tuple[list[dict], dict]:
    """The teacher's new questions for the next cycle, with their source level."""
    draws, info = draw_sources(levelled, total, ratio, seed=seed, by=by)
    raw = ask(draws, lambda d: new_question_messages(d["question"], d["level"]), generator, progress,
              args={"model": model_name, "prompts": PROMPTS}, sampling=sampling, batch_size=batch_size)
    seen = {" ".join(q.split()).lower() for q in existing}
    out, reasons = [], Counter()
    for d in draws:
        question, reason = parse_created(raw[d["id"]][0], d["source_question"])
        key = " ".join((question or "").split()).lower()
        if question is not None and key in seen:
            question, reason = None, "duplicate"
        reasons[reason] += 1
        if question is None:
            continue
        seen.add(key)
        out.append({"id": f"c{cycle}:{d['id']}", "question": question, "level": d["level"],
                    "source_id": d["source_id"], "cycle": cycle})
    return out, {**info, "requested": len(draws), "written": len(out), "outcomes": dict(reasons),
                 "by_level": dict(Counter(q["level"] for q in out)), "usage": raw.usage,
                 "this_attempt": {"usage": generator.usage}}
