"""Multi-aspect scoring of instruction samples (SCoder §3, eq. 1–2, Appendix C).

The scorer rates each (problem, solution) pair on Z aspects with integers in
[0, 9] and a raw composite (`overall`) score; the aggregated score is
Score = Σ_z w_z · x_z (eq. 1), with w learned by ridge regression from K
experiments that map a dataset's mean aspect vector to the benchmark score of
a model fine-tuned on it (eq. 2, ``scoder.weights``). The best-scored candidate
per snippet is kept.

    samples, stats = score_samples(samples, generator, DEFAULT_ASPECTS)
    kept = best_candidates(samples, selector="weighted", weights=fit["weights"])

The paper's scoring prompt (its Figure 7) is an image we do not have; ours is
built from the Qwen2.5-Coder checklist that the paper cites, plus problem clarity.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

DEFAULT_ASPECTS: dict[str, str] = {
    "question_answer_consistency": "the solution answers exactly the problem that is asked",
    "relevance": "the problem is relevant to the code snippet it was written from",
    "difficulty": "the problem is challenging enough to teach something non-trivial",
    "code_existence": "the solution contains actual code, not only prose",
    "code_correctness": "the code is free of syntax errors and logical bugs and solves the problem",
    "code_quality": "good naming, consistent indentation and adherence to best practices",
    "code_clarity": "the code is easy to read and understand",
    "code_comments": "comments and docstrings are present and explain the code usefully",
    "ease_of_learning": "educational value for a student learning to program",
    "problem_clarity": "the problem statement is self-contained and unambiguous",
}
OVERALL = "overall"
DIGITS = [str(d) for d in range(10)]
SELECTORS = ("weighted", "composite", "average")

# Names a scorer may use for the composite line instead of "overall".
_OVERALL_ALIASES = {"overall", "overall_score", "composite", "composite_score", "final_score", "total_score"}


def scoring_messages(problem: str, solution: str, aspects: dict[str, str], snippet: str | None = None) -> list[dict]:
    """Chat prompt asking the scorer for one `aspect: <0-9>` line per aspect, then `overall: <0-9>`.

    The code snippet the sample was synthesized from is shown when there is one, so that
    relevance (the problem against its snippet) is judged on what it is about; a sample
    written without a snippet (e.g. evol-codealpaca's) says so."""
    rubric = "\n".join(f"- {name}: {desc}" for name, desc in aspects.items())
    form = "\n".join(f"{name}: <score>" for name in [*aspects, OVERALL])
    code = (snippet or "").strip("\n")
    source = (f"### Code snippet the problem was written from\n```python\n{code}\n```\n\n" if code.strip()
              else "(This sample was not written from a code snippet.)\n\n")
    content = (
        "You are an expert reviewer of programming instruction data. Rate the problem and its "
        "solution below on each aspect with an integer from 0 (very poor) to 9 (excellent).\n\n"
        f"Aspects:\n{rubric}\n- {OVERALL}: your overall judgement of the sample's quality\n\n"
        f"{source}### Problem\n{problem.strip()}\n\n### Solution\n{solution.strip()}\n\n"
        f"Answer with exactly these lines, one integer each, and nothing else:\n{form}"
    )
    return [{"role": "user", "content": content}]


# ---------------------------------------------------------------- parsing

def _norm(name: str) -> str:
    """`Question/Answer Consistency` -> `question_answer_consistency`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# A score at the start of a value, after optional "score"/"rating" words: "7", "7/9", "7 out of 9", "7.5".
_VALUE = re.compile(
    r"(?:(?:score|rating)\s*(?:of|is|=|:)?\s*)?(-?\d+(?:\.\d+)?)(?:\s*(?:/|out\s+of)\s*\d+)?", re.I
)
_BULLET = re.compile(r"^\s*(?:[-*+•>]|\d+[.)])\s+")


def _split_line(line: str) -> tuple[str, str] | None:
    """(key, value) of a scorer line: `key: value`, `key = value`, `key - value` or a table row."""
    if line.count("|") >= 2:  # markdown table row "| relevance | 7 |"
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        return (cells[0], cells[1]) if len(cells) >= 2 else None
    line = _BULLET.sub("", line)
    # A separator, or failing that a bare "relevance 7".
    m = re.match(r"(.+?)\s*(?::|=|\s[-–—]\s)\s*(.*)$", line) or re.match(r"(.+?)\s+(-?\d.*)$", line)
    return (m.group(1), m.group(2)) if m else None


def _score_value(value: str) -> float | None:
    """The number a value starts with (markdown stripped), or None."""
    m = _VALUE.match(re.sub(r"[*_`\[\]]", "", value).strip())
    return float(m.group(1)) if m else None


def parse_aspect_scores(
    text: str, aspects: list[str]
) -> tuple[dict[str, int | None], int | None, list[str]]:
    """Parse scorer output into (aspect -> score, overall, aspects that failed to parse).

    Names match case-, space- and punctuation-insensitively, a parenthetical or a
    trailing "score" after the name is ignored; lines without a number are skipped;
    the first scored line for a name wins;
    "7/9" and "7 out of 9" read as 7 (the denominator is ignored); decimals round
    half up. A score outside [0, 9] counts as a failure (None) rather than being
    clipped, because "10" usually means the scorer used another scale.
    """
    wanted = {_norm(a): a for a in aspects}
    found: dict[str, float | None] = {}
    for line in text.splitlines():
        kv = _split_line(line)
        if kv is None:
            continue
        key = _norm(re.sub(r"\(.*?\)", "", re.sub(r"[*_`#]", " ", kv[0])))
        key = key.removesuffix("_score") if key.removesuffix("_score") in wanted else key
        name = wanted.get(key) or (OVERALL if key in _OVERALL_ALIASES else None)
        value = _score_value(kv[1])
        # Skip unknown names, prose without a number ("Overall: good work") and duplicates (first wins).
        if name is None or value is None or name in found:
            continue
        found[name] = value if 0 <= value <= 9 else None

    def as_int(x: float | None) -> int | None:
        return None if x is None else int(math.floor(x + 0.5))

    scores = {a: as_int(found.get(a)) for a in aspects}
    return scores, as_int(found.get(OVERALL)), [a for a in aspects if scores[a] is None]


# ---------------------------------------------------------------- scoring

def expected_digit(logprobs: dict[str, float]) -> float | None:
    """E[d] under the next-token distribution renormalised over the digits 0..9 (None if all -inf)."""
    lp = np.array([logprobs.get(d, -math.inf) for d in DIGITS], dtype=float)
    if not np.isfinite(lp).any():
        return None
    p = np.exp(lp - lp[np.isfinite(lp)].max())
    return float((p * np.arange(10)).sum() / p.sum())


def _batches(items: list, size: int):
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + size]


def score_samples(
    samples: list[dict],
    generator,
    aspects: dict[str, str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    mode: str = "generate",
) -> tuple[list[dict], dict]:
    """Score each sample; adds `aspect_scores` and `composite`, returns (samples, stats).

    mode "generate": greedy decoding of the scoring prompt, parsed with
    `parse_aspect_scores` (integer scores; the raw text is kept as `scorer_output`).
    mode "logprob": for each aspect and `overall`, the prompt plus an assistant prefix
    "<name>: " and the expected digit under the model's next-token distribution
    (real-valued scores, never unparseable unless the generator returns no finite
    digit logprob); the prompt shared by a sample's aspects runs once. Our finer-grained alternative,
    not in the paper; it assumes digits tokenise alone (true for SmolLM2, Qwen2.5, Llama 3).
    """
    names = list(aspects)
    prompts = [scoring_messages(s["problem"], s["solution"], aspects, s.get("snippet")) for s in samples]
    out = [dict(s) for s in samples]
    failures: Counter = Counter({a: 0 for a in [*names, OVERALL]})
    if mode == "generate":
        texts: list[str] = []
        for batch in _batches(prompts, batch_size):
            texts += [c[0] for c in generator.generate(
                batch, temperature=0.0, max_new_tokens=max_new_tokens, n=1, seed=0)]
        for rec, text in zip(out, texts):
            scores, overall, failed = parse_aspect_scores(text, names)
            rec.update(aspect_scores=scores, composite=overall, scorer_output=text)
            failures.update(failed + ([OVERALL] if overall is None else []))
    elif mode == "logprob":
        targets = [*names, OVERALL]
        convs = [p + [{"role": "assistant", "content": f"{t}: "}] for p in prompts for t in targets]
        values: list[float | None] = []
        # Whole samples per call: a sample's prompts differ only in the prefilled name, so
        # the backend runs the shared part once (key/value cache reuse, scoder.llm.prefix).
        for batch in _batches(convs, batch_size * len(targets)):
            values += [expected_digit(lp) for lp in generator.score_choices(batch, DIGITS)]
        for i, rec in enumerate(out):
            row = dict(zip(targets, values[i * len(targets) : (i + 1) * len(targets)]))
            rec.update(aspect_scores={a: row[a] for a in names}, composite=row[OVERALL])
            failures.update(t for t in targets if row[t] is None)
    else:
        raise ValueError(f"unknown scoring mode {mode!r}; expected 'generate' or 'logprob'")
    n = len(out)
    complete = sum(all(v is not None for v in r["aspect_scores"].values()) for r in out)
    stats = {
        "mode": mode,
        "n": n,
        "aspects": names,
        "parse_failures": {a: failures[a] for a in names},
        "overall_failures": failures[OVERALL],
        "fully_parsed": complete,
        "parse_rate": complete / n if n else None,
    }
    return out, stats


# ---------------------------------------------------------------- aggregation and selection

def aggregate(aspect_scores: dict[str, float | None], weights: dict[str, float]) -> float:
    """Score = Σ_z w_z·x_z over the weighted aspects (eq. 1).

    A missing aspect (absent or None) counts as the mean of the present ones, so
    one unparsed line neither zeroes nor drops a sample; with none present the
    score is NaN (ranked last by `best_candidates`). Aspects without a weight are
    ignored; a fitted intercept is left out since it does not change the ranking.
    """
    present = [aspect_scores[a] for a in weights if aspect_scores.get(a) is not None]
    if not present:
        return math.nan
    fill = float(np.mean(present))
    return float(sum(w * (fill if aspect_scores.get(a) is None else aspect_scores[a])
                     for a, w in weights.items()))


def _average(aspect_scores: dict[str, float | None]) -> float:
    present = [v for v in aspect_scores.values() if v is not None]
    return float(np.mean(present)) if present else math.nan


def selector_score(sample: dict, selector: str = "weighted", weights: dict | None = None) -> float:
    """A sample's score under a selector: "weighted" (eq. 1), "composite" (raw overall), "average"."""
    if selector == "weighted":
        if weights is None:
            raise ValueError("selector 'weighted' needs weights")
        return aggregate(sample["aspect_scores"], weights)
    if selector == "composite":
        c = sample.get("composite")
        return math.nan if c is None else float(c)
    if selector == "average":
        return _average(sample["aspect_scores"])
    raise ValueError(f"unknown selector {selector!r}; expected one of {SELECTORS}")


def best_candidates(
    samples: list[dict], *, selector: str = "weighted", weights: dict | None = None
) -> list[dict]:
    """The best-scored sample per `snippet_id` (ties: smallest id; NaN ranks last), with `score` added.

    Snippets come out in order of first appearance.
    """
    best: dict[str, tuple[tuple, dict]] = {}
    for s in samples:
        score = selector_score(s, selector, weights)
        # Larger key wins: a real score beats NaN; equal scores fall back to the smaller id.
        key = (not math.isnan(score), -math.inf if math.isnan(score) else score)
        cur = best.get(s["snippet_id"])
        if cur is None or key > cur[0] or (key == cur[0] and str(s["id"]) < str(cur[1]["id"])):
            best[s["snippet_id"]] = (key, {**s, "score": None if math.isnan(score) else score})
    return [rec for _, rec in best.values()]


def aspect_weights(spec: dict, aspects: list[str], learned: dict | None = None) -> dict[str, float]:
    """The w of eq. 1 that ``scorer.weights`` configures: uniform, fixed ``weights``, or the
    ``learned`` ones (the weights stage's ``weights.json``); every aspect needs one."""
    if spec["method"] == "uniform":
        return {a: 1.0 / len(aspects) for a in aspects}
    weights = learned["weights"] if spec["method"] == "learned" else spec.get("weights", {})
    missing = [a for a in aspects if a not in weights]
    if missing:
        raise ValueError(f"scorer.weights: no weight for aspect(s) {', '.join(missing)}")
    return {a: float(weights[a]) for a in aspects}


# ---------------------------------------------------------------- the scorer's own data (Appendix C)

def scorer_training_pool(files: list[str], sources: list[dict], *, seed: int) -> tuple[list[dict], dict]:
    """Up to ``count`` parsed (problem, solution) samples from each source, tagged with it.

    A source reads ``files[source["file"]]`` (a workflow output) or an external JSONL
    (``data``: evol-codealpaca-style ``instruction``/``output`` or ``problem``/``solution``).
    A source with more samples than ``count`` is subsampled with ``seed``."""
    from scoder.data import load_training_samples

    rng = np.random.default_rng(seed)
    pool, counts = [], {}
    for source in sources:
        if source["file"] is not None:
            rows = load_training_samples([files[source["file"]]])
        else:
            rows = load_training_samples([], external=source["data"])
        rows = [r for r in rows if r.get("problem") and r.get("solution")]
        if len(rows) > source["count"]:
            rows = [rows[i] for i in sorted(rng.choice(len(rows), source["count"], replace=False))]
        for i, r in enumerate(rows):
            pool.append({"id": f"{source['name']}:{r.get('id', i)}", "source": source["name"],
                         "snippet_id": f"{source['name']}:{r.get('snippet_id', i)}",
                         "problem": r["problem"], "solution": r["solution"],
                         **({"snippet": r["snippet"]} if r.get("snippet") else {})})
        counts[source["name"]] = len(rows)
    return pool, counts


def scoring_example(sample: dict, aspects: dict[str, str]) -> dict | None:
    """A scorer training example: the scoring prompt, answered with the teacher's scores
    (rounded to integers), or None when the teacher's scores did not parse."""
    scores = {a: sample["aspect_scores"].get(a) for a in aspects}
    if any(v is None for v in scores.values()) or sample.get("composite") is None:
        return None
    lines = [f"{a}: {int(math.floor(v + 0.5))}" for a, v in scores.items()]
    lines.append(f"{OVERALL}: {int(math.floor(sample['composite'] + 0.5))}")
    return {"messages": scoring_messages(sample["problem"], sample["solution"], aspects, sample.get("snippet"))
            + [{"role": "assistant", "content": "\n".join(lines)}]}


def random_candidates(samples: list[dict], *, seed: int) -> list[dict]:
    """One candidate per snippet drawn at random (the "w/o multi-aspect scoring" ablation)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[dict]] = {}
    for s in samples:
        groups.setdefault(s["snippet_id"], []).append(s)
    return [{**g[int(rng.integers(len(g)))], "score": None} for g in groups.values()]
