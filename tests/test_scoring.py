"""Multi-aspect scoring: parsing scorer output, aggregation, best candidate per snippet
(the ridge weights of eq. 2: test_weights.py)."""
import math

import numpy as np
import pytest

from scoder.scoring import (
    DEFAULT_ASPECTS,
    aggregate,
    best_candidates,
    parse_aspect_scores,
    score_samples,
    scoring_messages,
)

ASPECTS = list(DEFAULT_ASPECTS)


class FakeGenerator:
    """Returns canned scorer text, or canned digit logprobs keyed by the assistant prefix."""

    def __init__(self, text="", logprobs=None):
        self.text, self.logprobs, self.calls = text, logprobs or {}, []

    def generate(self, conversations, temperature=0.0, max_new_tokens=128, n=1, seed=0):
        self.calls.append(("generate", len(conversations), temperature))
        return [[self.text] for _ in conversations]

    def score_choices(self, conversations, choices):
        self.calls.append(("score_choices", len(conversations), None))
        return [{c: self.logprobs[conv[-1]["content"]].get(c, -math.inf) for c in choices}
                for conv in conversations]


def test_default_aspects_and_prompt():
    assert len(DEFAULT_ASPECTS) == 10 and "problem_clarity" in DEFAULT_ASPECTS
    msgs = scoring_messages("Add two numbers.", "def add(a, b):\n    return a + b", DEFAULT_ASPECTS)
    text = msgs[-1]["content"]
    assert "Add two numbers." in text and "return a + b" in text
    assert all(f"{a}: <score>" in text for a in ASPECTS) and "overall: <score>" in text


def test_parse_clean_output_round_trips():
    text = "\n".join(f"{a}: {i % 10}" for i, a in enumerate(ASPECTS)) + "\noverall: 6"
    scores, overall, failed = parse_aspect_scores(text, ASPECTS)
    assert scores == {a: i % 10 for i, a in enumerate(ASPECTS)}
    assert overall == 6 and failed == []


def test_parse_survives_messy_output():
    text = """Sure! Here is my evaluation of the sample.

**Question/Answer Consistency**: 8 - the solution matches the problem
- Relevance: 7/9
* **Difficulty:** 5 out of 9
1. Code Existence = 9
| code correctness | 12 |
Code_Quality: 6
code quality: 2
Code Clarity (0-9): 7.6
code comments: N/A
Overall: the sample is decent.
Overall Score: 7
I hope this helps."""
    scores, overall, failed = parse_aspect_scores(text, ASPECTS)
    assert scores["question_answer_consistency"] == 8
    assert scores["relevance"] == 7  # "7/9"
    assert scores["difficulty"] == 5  # "5 out of 9"
    assert scores["code_existence"] == 9
    assert scores["code_correctness"] is None  # out of range is a failure, not clipped
    assert scores["code_quality"] == 6  # duplicated line: first wins
    assert scores["code_clarity"] == 8  # decimals round
    assert overall == 7  # a prose line without a number does not block the scored one
    assert set(failed) == {"code_correctness", "code_comments", "ease_of_learning", "problem_clarity"}


def test_parse_garbage_fails_every_aspect():
    scores, overall, failed = parse_aspect_scores("I cannot rate this.", ASPECTS)
    assert overall is None and failed == ASPECTS and set(scores.values()) == {None}


def test_score_samples_generate_counts_failures():
    gen = FakeGenerator("relevance: 9\ndifficulty: 3\noverall: 4\n")
    samples = [{"id": f"s{i}", "snippet_id": "a", "problem": "p", "solution": "s"} for i in range(5)]
    out, stats = score_samples(samples, gen, DEFAULT_ASPECTS, batch_size=2)
    assert [c[1] for c in gen.calls] == [2, 2, 1] and all(c[2] == 0.0 for c in gen.calls)  # greedy, batched
    assert out[0]["aspect_scores"]["relevance"] == 9 and out[0]["composite"] == 4
    assert stats["parse_failures"]["relevance"] == 0 and stats["parse_failures"]["code_quality"] == 5
    assert stats["overall_failures"] == 0 and stats["fully_parsed"] == 0
    assert "aspect_scores" not in samples[0]  # inputs are not mutated


def test_score_samples_logprob_expected_digit():
    aspects = {"relevance": "r", "difficulty": "d"}
    lp = {
        "relevance: ": {"3": math.log(0.5), "7": math.log(0.5)},  # E = 5
        # unnormalised mass on digits: renormalised, E = (0*1 + 9*3) / 4
        "difficulty: ": {"0": math.log(0.1), "9": math.log(0.3)},
        "overall: ": {},  # no digit mass: a failure
    }
    out, stats = score_samples([{"id": "x", "problem": "p", "solution": "s"}], FakeGenerator(logprobs=lp),
                               aspects, mode="logprob")
    assert out[0]["aspect_scores"]["relevance"] == pytest.approx(5.0)
    assert out[0]["aspect_scores"]["difficulty"] == pytest.approx(6.75)
    assert out[0]["composite"] is None and stats["overall_failures"] == 1


def test_aggregate_weighted_sum_with_missing_as_mean():
    w = {"a": 1.0, "b": 2.0, "c": -1.0}
    assert aggregate({"a": 3, "b": 4, "c": 5}, w) == pytest.approx(3 + 8 - 5)
    assert aggregate({"a": 3, "b": None, "c": 5}, w) == pytest.approx(3 + 2 * 4 - 5)
    assert math.isnan(aggregate({"a": None}, w))


def _sample(id_, snip, scores, composite):
    return {"id": id_, "snippet_id": snip, "aspect_scores": dict(zip("abc", scores)), "composite": composite}


@pytest.mark.parametrize("selector,weights,expected", [
    ("weighted", {"a": 0.0, "b": 0.0, "c": 1.0}, {"s1": "x3", "s2": "y1"}),
    ("composite", None, {"s1": "x1", "s2": "y2"}),  # a missing composite ranks last
    ("average", None, {"s1": "x2", "s2": "y1"}),
])
def test_best_candidates_is_argmax_of_selector(selector, weights, expected):
    samples = [
        _sample("x1", "s1", (1, 1, 1), 9), _sample("x2", "s1", (9, 9, 0), 2), _sample("x3", "s1", (0, 0, 8), 5),
        _sample("y2", "s2", (5, 5, 5), 3), _sample("y1", "s2", (5, 5, 5), None),  # tie on aspects: smaller id
    ]
    kept = best_candidates(samples, selector=selector, weights=weights)
    assert {k["snippet_id"]: k["id"] for k in kept} == expected
    assert [k["snippet_id"] for k in kept] == ["s1", "s2"] and all(k["score"] is not None for k in kept)


def test_best_candidates_tie_break_is_smallest_id():
    samples = [_sample("b", "s", (4, 4, 4), 4), _sample("a", "s", (4, 4, 4), 4), _sample("c", "s", (1, 1, 1), 9)]
    assert best_candidates(samples, selector="average")[0]["id"] == "a"
    assert best_candidates(samples, selector="composite")[0]["id"] == "c"
    with pytest.raises(ValueError):
        best_candidates(samples, selector="weighted")


def test_scorer_training_pool_caps_each_source_and_tags_it(tmp_path):
    from scoder.io import write_jsonl
    from scoder.scoring import scorer_training_pool

    a = tmp_path / "a.jsonl"
    write_jsonl(a, [{"id": f"a{i}", "snippet_id": f"s{i}", "snippet": f"def f{i}(): return {i}", "problem": f"p{i}",
                     "solution": f"s{i}"} for i in range(5)]
                + [{"id": "bad", "problem": None, "solution": "x"}])
    ext = tmp_path / "evol.jsonl"
    write_jsonl(ext, [{"instruction": f"q{i}", "output": f"o{i}"} for i in range(3)])
    pool, counts = scorer_training_pool([str(a)], [{"name": "m", "count": 3, "file": 0, "data": None},
                                                   {"name": "evol", "count": 10, "file": None, "data": str(ext)}], seed=0)
    assert counts == {"m": 3, "evol": 3}
    assert [r["source"] for r in pool] == ["m"] * 3 + ["evol"] * 3
    assert len({r["id"] for r in pool}) == 6 and all(r["problem"] for r in pool)
    # the snippet a sample was written from stays with it (the scorer judges relevance against it)
    assert [bool(r.get("snippet")) for r in pool] == [True] * 3 + [False] * 3


def test_the_scorer_sees_the_snippet_it_judges_relevance_against():
    snippet = "def running_total(xs):\n    return list(itertools.accumulate(xs))"
    with_snippet = scoring_messages("Sum prefixes.", "def f(x): ...", DEFAULT_ASPECTS, snippet)[-1]["content"]
    assert "running_total" in with_snippet and "relevant to the code snippet" in with_snippet
    assert with_snippet.index("running_total") < with_snippet.index("Sum prefixes.")
    without = scoring_messages("Sum prefixes.", "def f(x): ...", DEFAULT_ASPECTS)[-1]["content"]
    assert "not written from a code snippet" in without
    # training examples show the scorer the same prompt as scoring does
    from scoder.scoring import scoring_example

    sample = {"problem": "P", "solution": "S", "snippet": snippet, "composite": 5,
              "aspect_scores": {a: 5 for a in DEFAULT_ASPECTS}}
    assert scoring_example(sample, DEFAULT_ASPECTS)["messages"][0]["content"] == scoring_messages(
        "P", "S", DEFAULT_ASPECTS, snippet)[0]["content"]


def test_scoring_example_answers_the_prompt_with_rounded_teacher_scores():
    from scoder.scoring import scoring_example

    aspects = {"relevance": "r", "difficulty": "d"}
    sample = {"problem": "P", "solution": "S", "aspect_scores": {"relevance": 6.6, "difficulty": 2.0}, "composite": 4.4}
    ex = scoring_example(sample, aspects)
    assert ex["messages"][0]["role"] == "user" and "relevance" in ex["messages"][0]["content"]
    assert ex["messages"][-1] == {"role": "assistant", "content": "relevance: 7\ndifficulty: 2\noverall: 4"}
    # what the scorer learns to write, its parser reads back
    assert parse_aspect_scores(ex["messages"][-1]["content"], list(aspects))[:2] == ({"relevance": 7, "difficulty": 2}, 4)
    assert scoring_example({**sample, "aspect_scores": {"relevance": None, "difficulty": 2}}, aspects) is None


def test_random_candidates_keep_one_per_snippet_reproducibly():
    from scoder.scoring import random_candidates

    samples = [{"id": f"{s}-{k}", "snippet_id": s} for s in "abc" for k in range(4)]
    first = random_candidates(samples, seed=1)
    assert [r["snippet_id"] for r in first] == ["a", "b", "c"]
    assert first == random_candidates(samples, seed=1)
