"""Stage II, multi-view feedback (SODA §3.3), and the difficulty levels of §3.4.

* the student answers each question of the cycle with P_c (``answer``);
* a scoring model rates each answer with 1-6 points over the five rules of
  §3.3.1 (prompt of Fig. 3C; ``score_answers``).  Its training data are answers
  annotated by a stronger model (GPT-4 in the paper; ``annotate`` +
  ``scorer_examples``), trained with ``scoder.training``;
* the answer's code is built and run in the sandbox in its language (Python, Java,
  JavaScript, C, C++, Go; ``scoder.execution``) and judged Pass/Fail, ignoring
  environment issues such as a missing third-party module (``execute``);
* ``level`` puts each question in easy (Pass, score >= 4), medium (Pass,
  2 <= score < 4) or hard (Fail, or score < 2).

The paper's hard level reads "Fail and score < 2", which leaves a Fail with a
score >= 2 in no level; ``hard_rule: fail_or_low`` (default, as the project's
spec) makes every non-easy, non-medium question hard, ``fail_and_low`` follows
the paper's wording and reports the rest as unclassified.

``views`` drops one view for RQ2's ablations: without scoring ("solution
evaluation relies exclusively on execution results") a Pass is medium ("the
student can meet the basic requirements", the score that would make it easy is
unknown) and a Fail hard; without execution ("based solely on the scores") the
score thresholds alone give the level, and an unparsed score none.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from scoder.soda.generate import ask
from scoder.soda.knowledge import asked_language, correct_messages, parse_solution

SCORE_SYSTEM_PROMPT = "You are a helpful assistant."
# The five code review rules of §3.3.1 and their points (6 in all).
RULES = {
    "Basic Functionality": (2, "Check if the solution has obvious bugs (such as syntax and logical errors) and "
                               "provides a basic attempt to solve the programming question."),
    "Boundary Check": (1, "Check if the solution includes necessary boundary checks, ensuring that the code "
                          "behaves correctly under different scenarios and input ranges."),
    "Requirement Coverage": (1, "Check if the solution satisfies all requirements outlined in the question and "
                                "successfully addresses the core requirements."),
    "Readability and Documentation": (1, "Check the readability of the solution, where the key part should have "
                                         "detailed comments for ease of understanding for other developers."),
    "Coding Practices": (1, "Check for efficiency, error handling, and scalability in the solution, which "
                            "reflects best coding practices."),
}
SCORE_SYSTEM = "\n".join(f"- {name} ({pts} Point{'s' if pts > 1 else ''}): {text}"
                         for name, (pts, text) in RULES.items())
SCORE_PROMPT = ("Please assess the quality of code to the given programming question using 6-point scoring system "
                "described below.\n\nHere is the programming question:\n{question}\n#End of programming question#\n"
                "Here is the code:\n{code}\n#End of code#\nHere is the scoring system:\n{system}\n"
                "#End of scoring system#\n\nFirstly, provide a step-by-step analysis for programming question and "
                "code, starting with \"Code Analysis:\" Next, score the code according the five rules in the "
                "scoring system rigorously, starting with \"Score:\"")
MAX_SCORE = sum(p for p, _ in RULES.values())
LEVELS = ("easy", "medium", "hard")


def score_messages(question: str, code: str) -> list[dict]:
    """The scoring prompt (Fig. 3C) for one question and solution."""
    return [{"role": "system", "content": SCORE_SYSTEM_PROMPT},
            {"role": "user", "content": SCORE_PROMPT.format(question=question.strip(), code=code.strip(),
                                                            system=SCORE_SYSTEM)}]


# ------------------------------------------------------------------ parsing the score

_NUM = r"(\d+(?:\.\d+)?)"
_SCORE_AT = re.compile(r"\b(?:total|final|overall)?\s*score\s*[:=]", re.I)
_TOTAL = re.compile(r"\b(?:total|final|overall)(?:\s+score)?\s*[:=]?\s*\**\s*" + _NUM, re.I)
_LEADING = re.compile(r"^\s*[*_`]*\s*" + _NUM + r"(?:\s*(?:/|out\s+of)\s*\d+)?", re.I)


def parse_score(text: str) -> float | None:
    """The 0-6 score of a scoring answer, or None.  Reads the number after the last
    "Score:" (or a "Total: n" line after it); failing that, sums the per-rule points
    ("Basic Functionality: 2/2", each capped at the rule's maximum).  A number out of
    range is a failure, not clipped."""
    if not text:
        return None
    marks = list(_SCORE_AT.finditer(text))
    tail = text[marks[-1].end():] if marks else text
    total = _TOTAL.search(tail) or (_TOTAL.search(text) if not marks else None)
    leading = _LEADING.match(tail) if marks else None
    value = None
    if total:
        value = float(total.group(1))
    elif leading:
        value = float(leading.group(1))
    else:
        points = []
        for name, (cap, _) in RULES.items():
            m = re.search(re.escape(name) + r"[^\n:=]*?(?:\(\s*\d+\s*points?\s*\))?[^\n:=]*[:=-]\s*\**\s*" + _NUM,
                          tail, re.I)
            if m:
                points.append(min(float(m.group(1)), cap))
        value = sum(points) if points else None
    return value if value is not None and 0 <= value <= MAX_SCORE else None


def expected_score(logprobs: dict[str, float]) -> float | None:
    """E[points] under the next-token distribution renormalised over "0".."6"."""
    lp = np.array([logprobs.get(str(d), -math.inf) for d in range(MAX_SCORE + 1)], dtype=float)
    if not np.isfinite(lp).any():
        return None
    p = np.exp(lp - lp[np.isfinite(lp)].max())
    return float((p * np.arange(MAX_SCORE + 1)).sum() / p.sum())


# ------------------------------------------------------------------ the student's answers

def answer(questions: list[dict], generator, progress: str, *, sampling: dict, model_name: str,
           batch_size: int = 8) -> tuple[list[dict], dict]:
    """The student's solution y_s ~ S(P_c(x)) per question, with its code parsed."""
    raw = ask(questions, lambda q: correct_messages(q["question"]), generator, progress,
              args={"model": model_name, "prompt": "P_c"}, sampling=sampling, batch_size=batch_size)
    out, reasons = [], Counter()
    for q in questions:
        text = raw[q["id"]][0]
        parsed, reason = parse_solution(text, q.get("language") or asked_language(q["question"]))
        reasons[reason or "parsed"] += 1
        out.append({"id": q["id"], "question": q["question"], "answer": text,
                    "language": parsed["language"] if parsed else (q.get("language") or asked_language(q["question"])),
                    "code": parsed["code"] if parsed else None, "parse_failure": reason})
    n = len(out)
    return out, {"questions": n, "code_parsed": reasons.pop("parsed", 0), "failed": dict(reasons),
                 "usage": raw.usage, "this_attempt": {"usage": generator.usage}}


def _judged_text(a: dict) -> str:
    return a["code"] if a.get("code") else a["answer"]


def score_answers(answers: list[dict], generator, progress: str, *, mode: str = "generate",
                  max_new_tokens: int = 512, batch_size: int = 8, model_name: str = "") -> tuple[list[dict], dict]:
    """Each answer with ``score`` (0-6, None when unparsable) and the scorer's text.
    mode generate: greedy analysis + "Score:" parsed by ``parse_score`` (the paper);
    mode logprob: the expected points after the prefill "Score: " (not in the paper;
    a 135M scorer writes no parseable analysis)."""
    prompts = {a["id"]: score_messages(a["question"], _judged_text(a)) for a in answers}
    out = [dict(a) for a in answers]
    if mode == "generate":
        texts = ask(answers, lambda a: prompts[a["id"]], generator, progress,
                    args={"model": model_name, "prompt": SCORE_PROMPT, "system": SCORE_SYSTEM},
                    sampling={"temperature": 0.0, "max_new_tokens": max_new_tokens}, batch_size=batch_size)
        for rec in out:
            rec["scorer_output"] = texts[rec["id"]][0]
            rec["score"] = parse_score(rec["scorer_output"])
    elif mode == "logprob":
        digits = [str(d) for d in range(MAX_SCORE + 1)]
        convs = [prompts[a["id"]] + [{"role": "assistant", "content": "Score: "}] for a in answers]
        values = []
        for i in range(0, len(convs), batch_size):
            values += [expected_score(lp) for lp in generator.score_choices(convs[i:i + batch_size], digits)]
        for rec, value in zip(out, values):
            rec["score"] = value
    else:
        raise ValueError(f"scorer.mode must be generate or logprob, got {mode!r}")
    scored = [r["score"] for r in out if r["score"] is not None]
    return out, {"mode": mode, "n": len(out), "parsed": len(scored),
                 "parse_rate": round(len(scored) / len(out), 4) if out else None,
                 "mean_score": round(float(np.mean(scored)), 4) if scored else None}


def scorer_examples(annotated: list[dict]) -> list[dict]:
    """Training examples for the scoring model: scoring prompt -> the annotation
    (analysis and "Score: n"); unparsed annotations are left out."""
    out = []
    for a in annotated:
        if a.get("score") is None:
            continue
        target = a.get("scorer_output") or f"Score: {int(round(a['score']))}"
        out.append({"id": a["id"], "messages": score_messages(a["question"], _judged_text(a)) + [
            {"role": "assistant", "content": target}]})
    return out


def annotation_sample(answers: list[dict], k: int, seed: int) -> list[dict]:
    """The k answers (seeded) the annotator scores for the scorer's training set."""
    if k >= len(answers):
        return list(answers)
    idx = np.random.default_rng(seed).choice(len(answers), k, replace=False)
    return [answers[i] for i in sorted(idx)]


# ------------------------------------------------------------------ execution

def execute(language: str, code: str | None, *, timeout: float = 10.0) -> dict:
    """{"status": pass | fail | unsupported, "reason"}: the program compiles and runs to the
    end without an error (§3.3.2, ``scoder.execution.check_program`` in the sandbox);
    environment issues (a missing module or header) count as Pass, as in the paper; a
    language without a toolchain here is unsupported, never run another way."""
    from scoder.execution import check_program, language_spec

    if not code:
        return {"status": "fail", "reason": "no code in the answer"}
    try:
        language_spec(language)
    except ValueError:
        return {"status": "unsupported", "reason": f"no runner for language {language!r}"}
    result = check_program(language, code, timeout=timeout)
    if result.reason == "toolchain_missing":
        return {"status": "unsupported", "reason": f"toolchain missing: {result.detail}"}
    reason = result.reason if not result.detail else f"{result.reason}: {result.detail}"
    return {"status": "pass" if result.passed else "fail", "reason": reason[:300]}


# ------------------------------------------------------------------ difficulty levels

VIEWS = ("scoring", "execution")


def level(status: str, score: float | None, *, easy_min: float = 4, medium_min: float = 2,
          hard_rule: str = "fail_or_low", views=VIEWS) -> str | None:
    """easy / medium / hard from the two views (§3.4), or None (unclassified).
    An unsupported language is judged by its score alone; an unparsed score by the
    execution alone (Pass -> medium, Fail -> hard).  ``views`` without one of them:
    the module docstring."""
    if "execution" not in views:
        if score is None:
            return None
        return "easy" if score >= easy_min else "medium" if score >= medium_min else "hard"
    if "scoring" not in views:
        score = None
    passed = status != "fail"
    if score is None:
        return "medium" if passed else "hard"
    if passed and score >= easy_min:
        return "easy"
    if passed and score >= medium_min:
        return "medium"
    if hard_rule == "fail_or_low":
        return "hard"
    if hard_rule == "fail_and_low":
        return "hard" if (not passed and score < medium_min) else None
    raise ValueError(f"feedback.hard_rule must be fail_or_low or fail_and_low, got {hard_rule!r}")


def classify(scored: list[dict], executions: dict[str, dict], **thresholds) -> tuple[list[dict], dict]:
    """Each question with its execution verdict and level; stats per level."""
    out = []
    for rec in scored:
        ex = executions[rec["id"]]
        out.append({**rec, "execution": ex["status"], "execution_reason": ex["reason"],
                    "level": level(ex["status"], rec.get("score"), **thresholds)})
    statuses = Counter(r["execution"] for r in out)
    judged = statuses["pass"] + statuses["fail"]
    levels = Counter(r["level"] for r in out)
    scores = [r["score"] for r in out if r.get("score") is not None]
    return out, {"questions": len(out), "execution": dict(statuses),
                 "pass_rate": round(statuses["pass"] / judged, 4) if judged else None,
                 "mean_score": round(float(np.mean(scores)), 4) if scores else None,
                 "levels": {lv: levels.get(lv, 0) for lv in LEVELS}, "unclassified": levels.get(None, 0),
                 "languages": dict(Counter(r["language"] for r in out))}


def multi_view_feedback(answers: list[dict], *, views=VIEWS, score=None, workers: int = 1, timeout: float = 10.0,
                        **thresholds) -> tuple[list[dict], dict]:
    """Stage II over the student's answers: ``score(answers) -> (scored, stats)`` (e.g.
    ``score_answers`` with the scoring model) when scoring is one of ``views``, sandboxed
    execution when execution is, then the levels (``classify``)."""
    from concurrent.futures import ThreadPoolExecutor

    if "scoring" in views:
        scored, score_stats = score(answers)
    else:  # the "w/o scoring" ablation: no scoring model is asked
        scored, score_stats = [{**a, "score": None} for a in answers], {"mode": "off", "parse_rate": None}
    if "execution" in views:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            verdicts = list(pool.map(lambda a: execute(a["language"], a["code"], timeout=timeout), answers))
    else:  # the "w/o execution" ablation: nothing is run
        verdicts = [{"status": "skipped", "reason": "feedback.views has no execution"} for _ in answers]
    levelled, stats = classify(scored, {a["id"]: v for a, v in zip(answers, verdicts)}, views=views, **thresholds)
    return levelled, {**stats, "views": list(views), "score_parse_rate": score_stats["parse_rate"],
                      "scorer": score_stats}
