"""Batching and key/value-cache reuse give what the plain computation gives: the prefix
plan, scoring with shared prefixes against one plain forward pass per prompt, greedy
generation in length-sorted batches against each prompt alone (on a micro model whose
outputs depend strongly on its input, so a wrong position, mask or order shows)."""
import pytest
import torch

from scoder.llm import make_generator
from scoder.llm.base import chat_prompt
from scoder.llm.prefix import PrefixGroup, common_prefix_length, prefix_plan
from scoder.prompts import quality_messages
from scoder.scoring import DEFAULT_ASPECTS, DIGITS, OVERALL, scoring_messages

CODES = ['def add(a, b):\n    """Return the sum of a and b."""\n    return a + b',
         'def f(x):\n    """Stuff."""\n    return [i * 2 - 1 for i in x if i % 3]',
         "class A:\n    pass",
         'def mx(v):\n    """Return the minimum of a list of numbers, or None for an empty list."""\n'
         '    return max(v) if v else None']


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2], [1, 2]) == 2


def test_prefix_plan_finds_the_root_and_groups_sharing_more():
    root = list(range(100, 120))
    a = root + list(range(200, 240))       # two prompts of sample a: differ in the last token
    b = root + list(range(300, 340))
    ids = [a + [1], b + [1], a + [2], root + [7, 8], b + [2, 9]]
    length, groups = prefix_plan(ids, min_shared=16)
    assert length == 20
    assert groups == [PrefixGroup(60, [0, 2]), PrefixGroup(60, [1, 4]), PrefixGroup(20, [3])]
    # a gain under min_shared keeps prompts at the root
    assert prefix_plan(ids, min_shared=41)[1] == [PrefixGroup(20, [0, 1, 2, 3, 4])]


def test_prefix_plan_keeps_a_last_token_to_score():
    assert prefix_plan([[1, 2, 3]]) == (2, [PrefixGroup(2, [0])])
    same = [[5] * 40, [5] * 40]
    length, groups = prefix_plan(same)
    assert length == 39 and groups == [PrefixGroup(39, [0, 1])]
    with pytest.raises(ValueError, match="empty prompt"):
        prefix_plan([[1], []])


@pytest.fixture(scope="module")
def gen(sharp_micro_model):
    return make_generator({"backend": "transformers", "model": sharp_micro_model, "device": "cpu",
                           "batch_size": 3})


def plain_logprobs(gen, conversations, choices):
    """One unpadded forward pass per prompt: the reference."""
    rows = []
    for conv in conversations:
        ids = gen.tokenizer(chat_prompt(gen.tokenizer, conv), add_special_tokens=False,
                            return_tensors="pt")["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(gen.lm(input_ids=ids, logits_to_keep=1).logits[0, -1].float(), dim=-1)
        rows.append({c: lp[gen.tokenizer.encode(c, add_special_tokens=False)[0]].item() for c in choices})
    return rows


def assert_close(rows, reference, varied=True):
    assert len(rows) == len(reference)
    for row, ref in zip(rows, reference):
        assert row.keys() == ref.keys()
        for choice in ref:
            assert row[choice] == pytest.approx(ref[choice], abs=1e-4)
    if varied:  # the model is sharp enough that a wrong position or mask would show
        assert max(abs(a[c] - b[c]) for a in reference for b in reference for c in a) > 0.1


def test_quality_prompts_reuse_the_few_shot_prefix_with_plain_log_probs(gen):
    convs = [quality_messages(code, 2) for code in CODES]
    assert_close(gen.score_choices(convs, ["Yes", "No"]), plain_logprobs(gen, convs, ["Yes", "No"]))
    # the next call starts from the previous call's prefix (kept, cut back where they differ)
    again = [quality_messages(code, 2) for code in CODES[1:3]]
    assert_close(gen.score_choices(again, ["Yes", "No"]), plain_logprobs(gen, again, ["Yes", "No"]))
    one = [quality_messages(CODES[3], 2)]
    assert_close(gen.score_choices(one + one, ["Yes", "No"]), plain_logprobs(gen, one + one, ["Yes", "No"]),
                 varied=False)


def test_aspect_prompts_share_their_sample_and_match_plain_log_probs(gen):
    samples = [("Add two numbers.", "```python\n" + CODES[0] + "\n```"),
               ("Double the odd ones.", "```python\n" + CODES[1] + "\n```")]
    aspects = dict(list(DEFAULT_ASPECTS.items())[:4])
    convs = [scoring_messages(p, s, aspects) + [{"role": "assistant", "content": f"{a}: "}]
             for p, s in samples for a in [*aspects, OVERALL]]
    assert_close(gen.score_choices(convs, DIGITS), plain_logprobs(gen, convs, DIGITS))


def test_prompts_sharing_nothing_score_as_alone(gen):
    convs = [[{"role": "user", "content": c}] for c in ("Hi", CODES[1], "Explain recursion in one sentence.")]
    gen._last_root = ([], None)  # no earlier call to start from
    assert_close(gen.score_choices(convs, ["Yes", "No"]), plain_logprobs(gen, convs, ["Yes", "No"]))


def test_score_continuations_scores_raw_prompts_with_bos(base_micro_model):
    base = make_generator({"backend": "transformers", "model": base_micro_model, "device": "cpu",
                           "batch_size": 2})
    assert not base.has_chat_template
    prompts = [f"Question: {c}\nAnswer:" for c in CODES[:3]]
    rows = base.score_continuations(prompts, [" Yes", " No"])
    for prompt, row in zip(prompts, rows):
        ids = base.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(base.lm(input_ids=ids, logits_to_keep=1).logits[0, -1].float(), dim=-1)
        for choice in (" Yes", " No"):
            tok = base.tokenizer.encode(choice, add_special_tokens=False)[0]
            assert row[choice] == pytest.approx(lp[tok].item(), abs=1e-4)


def test_greedy_generation_in_length_sorted_batches_equals_each_prompt_alone(gen):
    convs = [[{"role": "user", "content": text}] for text in
             ("Hi", CODES[0], "Write a function.", CODES[3], CODES[2])]  # 5 prompts, batches of 3
    batched = gen.generate(convs, max_new_tokens=12)
    alone = [gen.generate([conv], max_new_tokens=12)[0] for conv in convs]
    assert batched == alone
    assert len({texts[0] for texts in alone}) > 1  # the prompts really get different answers
    # sampling stays reproducible by seed with the reordering
    kw = dict(temperature=1.0, max_new_tokens=8, n=2, seed=3)
    assert gen.generate(convs, **kw) == gen.generate(convs, **kw)
