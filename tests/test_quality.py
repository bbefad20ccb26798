"""classify_quality: p(yes) from the model's Yes/No log-probs, thresholding, resuming."""
import pytest

from scoder.llm import make_generator, normalize_choices
from scoder.pool.quality import classify_quality
from scoder.prompts import QUALITY_ANSWER_CUE, quality_completion_prompt, quality_messages

RECORDS = [
    {"id": "good", "code": 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b'},
    {"id": "vague", "code": 'def f(x):\n    """Stuff."""\n    return [i * 2 - 1 for i in x if i % 3]'},
    {"id": "wrong", "code": 'def mx(v):\n    """Return the minimum."""\n    return max(v)'},
]


class Counting:
    """A real generator that counts the conversations it scores."""

    def __init__(self, inner):
        self.inner, self.model, self.scored = inner, inner.model, 0
        self.has_chat_template = inner.has_chat_template

    def score_choices(self, conversations, choices):
        self.scored += len(conversations)
        return self.inner.score_choices(conversations, choices)

    def score_continuations(self, prompts, choices):
        self.scored += len(prompts)
        return self.inner.score_continuations(prompts, choices)


@pytest.fixture(scope="module")
def gen(micro_model):
    return make_generator({"backend": "transformers", "model": micro_model, "device": "cpu",
                           "batch_size": 2})


def test_p_yes_is_the_yes_no_probability_renormalised(gen):
    labelled, stats = classify_quality(RECORDS, gen, batch_size=2)
    assert [r["id"] for r in labelled] == ["good", "vague", "wrong"]
    assert labelled[0]["code"] == RECORDS[0]["code"]  # input fields kept
    direct = gen.score_choices([quality_messages(RECORDS[2]["code"])], ["Yes", "No"])[0]
    assert labelled[2]["quality_p_yes"] == pytest.approx(normalize_choices(direct)["Yes"],
                                                         abs=1e-4)
    assert all(0 < r["quality_p_yes"] < 1 for r in labelled)
    assert stats["total"] == 3 and stats["yes"] + stats["no"] == 3


def test_threshold_decides_the_label(gen):
    labelled, _ = classify_quality(RECORDS, gen)
    cut = sorted(r["quality_p_yes"] for r in labelled)[1]  # the middle one
    relabelled, stats = classify_quality(RECORDS, gen, threshold=cut)
    assert [r["quality"] for r in relabelled] == [
        "yes" if r["quality_p_yes"] >= cut else "no" for r in labelled]
    assert stats["yes"] == 2 and stats["no"] == 1


def test_progress_file_skips_scored_records_on_rerun(gen, tmp_path):
    progress = tmp_path / "quality.progress.jsonl"
    first = Counting(gen)
    labelled, _ = classify_quality(RECORDS[:2], first, progress_path=progress)
    assert first.scored == 2
    second = Counting(gen)
    again, stats = classify_quality(RECORDS, second, progress_path=progress)
    assert second.scored == 1 and stats["scored"] == 1
    assert [r["quality_p_yes"] for r in again[:2]] == [r["quality_p_yes"] for r in labelled]


def test_resume_after_a_torn_line_and_rescore_on_prompt_change(gen, tmp_path):
    progress = tmp_path / "quality.progress.jsonl"
    first, _ = classify_quality(RECORDS, gen, batch_size=1, progress_path=progress)
    lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # killed mid-append
    counting = Counting(gen)
    again, stats = classify_quality(RECORDS, counting, batch_size=1, progress_path=progress)
    assert counting.scored == 1 and stats["scored"] == 1
    assert [r["quality_p_yes"] for r in again] == pytest.approx([r["quality_p_yes"] for r in first], abs=1e-6)
    counting = Counting(gen)
    classify_quality(RECORDS, counting, batch_size=1, progress_path=progress)
    assert counting.scored == 0  # the re-scored function went on a line of its own
    # another prompt (one shot instead of all) is another fingerprint: everything is scored again
    counting = Counting(gen)
    classify_quality(RECORDS, counting, progress_path=progress, shots=1)
    assert counting.scored == 3


def test_a_base_model_gets_a_plain_completion_prompt(base_micro_model, tmp_path):
    base = make_generator({"backend": "transformers", "model": base_micro_model, "device": "cpu",
                           "batch_size": 2})
    assert not base.has_chat_template
    with pytest.raises(ValueError):  # what a chat prompt would do with this tokenizer
        base.tokenizer.apply_chat_template(quality_messages(RECORDS[0]["code"]), tokenize=False)
    counting = Counting(base)
    labelled, stats = classify_quality(RECORDS, counting, shots=2, progress_path=tmp_path / "p.jsonl")
    assert counting.scored == 3 and stats["total"] == 3
    prompt = quality_completion_prompt(RECORDS[1]["code"], 2)
    assert prompt.endswith(QUALITY_ANSWER_CUE) and prompt.count(QUALITY_ANSWER_CUE) == 3
    assert "<|im_start|>" not in prompt and "Stuff." in prompt
    direct = base.score_continuations([prompt], [" Yes", " No"])[0]
    assert labelled[1]["quality_p_yes"] == pytest.approx(normalize_choices(direct)[" Yes"], abs=1e-4)
    assert len({round(r["quality_p_yes"], 4) for r in labelled}) > 1
