"""Generator interface on a micro model (transformers), config checks, and the
vLLM request/response helpers.

vLLM needs CUDA, so its helpers are tested with stand-in output objects shaped
like ``vllm.RequestOutput`` (the only stand-in in these tests).
"""
import math
from types import SimpleNamespace

import pytest
import torch

from scoder.llm import LLMConfigError, derive_seed, make_generator, normalize_choices
from scoder.llm import vllm_backend

CONVS = [[{"role": "user", "content": "Write a function that adds two numbers."}],
         [{"role": "user", "content": "Hi"}],
         [{"role": "user", "content": "Explain recursion in one long sentence, please."}]]


@pytest.fixture(scope="module")
def gen(micro_model):
    return make_generator({"backend": "transformers", "model": micro_model, "device": "cpu",
                           "batch_size": 2})


def test_generate_returns_n_completions_per_conversation_and_counts_usage(gen):
    before = gen.usage
    out = gen.generate(CONVS, temperature=1.0, top_p=0.9, max_new_tokens=6, n=2, seed=1)
    assert len(out) == 3 and all(len(group) == 2 for group in out)
    assert all(isinstance(t, str) for group in out for t in group)
    after = gen.usage
    assert after["requests"] - before["requests"] == 3
    assert after["prompt_tokens"] - before["prompt_tokens"] > 3 * 10
    assert 0 < after["completion_tokens"] - before["completion_tokens"] <= 3 * 2 * 6
    assert after["est_cost_usd"] == 0.0


def test_sampling_is_reproducible_by_seed_and_greedy_is_deterministic(gen):
    kw = dict(temperature=1.0, max_new_tokens=8, n=2)
    a = gen.generate(CONVS, seed=7, **kw)
    assert gen.generate(CONVS, seed=7, **kw) == a
    assert gen.generate(CONVS, seed=8, **kw) != a
    greedy = gen.generate(CONVS, max_new_tokens=8, n=2)
    assert greedy == gen.generate(CONVS, max_new_tokens=8, n=2, seed=99)
    assert all(g[0] == g[1] for g in greedy)  # n greedy copies are the same text


def test_score_choices_gives_log_probs_independent_of_batch_padding(gen):
    batched = gen.score_choices(CONVS, ["Yes", "No"])
    alone = gen.score_choices(CONVS[1:2], ["Yes", "No"])[0]
    assert set(batched[1]) == {"Yes", "No"}
    assert all(lp < 0 for row in batched for lp in row.values())
    # CONVS[1] is left-padded in its batch: same scores as unpadded.
    for choice in ("Yes", "No"):
        assert batched[1][choice] == pytest.approx(alone[choice], abs=1e-4)
    probs = normalize_choices(batched[0])
    assert sum(probs.values()) == pytest.approx(1.0)


def test_score_choices_rejects_choices_sharing_a_first_token(gen):
    with pytest.raises(ValueError, match="share a first token"):
        gen.score_choices(CONVS[:1], ["Yes", "Yes!"])


def test_completion_tokens_stop_at_first_eos(gen):
    eos = gen.eos_ids[0]
    new = torch.tensor([[5, 6, eos, eos], [5, 6, 7, 8]])
    assert gen._completion_tokens(new) == 3 + 4


def test_derive_seed_is_stable_and_spreads():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert len({derive_seed(0, b) for b in range(100)} | {derive_seed(1, 0)}) == 101


@pytest.mark.parametrize("spec, match", [
    ({"backend": "tgi", "model": "m"}, "`backend`"),
    ({"backend": "transformers"}, "`model`"),
    ({"backend": "transformers", "model": "m", "batchsize": 4}, "batchsize"),
    ({"backend": "openai", "model": "m", "api_key": "sk-x"}, "api_key"),
])
def test_make_generator_rejects_bad_config_naming_the_setting(spec, match):
    with pytest.raises(LLMConfigError, match=match):
        make_generator(spec)


def test_vllm_backend_explains_missing_vllm():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="pip install vllm"):
        make_generator({"backend": "vllm", "model": "m"})


# --- vLLM helpers on stand-in RequestOutput objects --------------------------

def _request_output(texts, prompt_len=5, prompt_logprobs=None):
    outputs = [SimpleNamespace(text=t, token_ids=list(range(len(t)))) for t in texts]
    return SimpleNamespace(outputs=outputs, prompt_token_ids=list(range(prompt_len)),
                           prompt_logprobs=prompt_logprobs)


def test_vllm_sampling_kwargs_follow_the_generate_arguments():
    assert vllm_backend.sampling_kwargs(temperature=0.2, top_p=0.95, max_new_tokens=64, n=3,
                                        seed=4) == dict(n=3, temperature=0.2, top_p=0.95,
                                                        max_tokens=64, seed=4)
    greedy = vllm_backend.sampling_kwargs(temperature=0.0, top_p=0.95, max_new_tokens=64,
                                          n=3, seed=4)
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0


def test_vllm_completions_group_texts_and_count_tokens():
    outs = [_request_output(["ab", "cde"], prompt_len=4), _request_output(["f", "gh"], 6)]
    texts, prompt_tokens, completion_tokens = vllm_backend.completions(outs, n=2)
    assert texts == [["ab", "cde"], ["f", "gh"]]
    assert (prompt_tokens, completion_tokens) == (10, 8)
    greedy, _, _ = vllm_backend.completions([_request_output(["x"])], n=3)
    assert greedy == [["x", "x", "x"]]


def test_vllm_choice_prompts_and_logprobs_round_trip():
    prompts = vllm_backend.choice_prompts([[1, 2], [3]], [10, 20])
    assert [p["prompt_token_ids"] for p in prompts] == [[1, 2, 10], [1, 2, 20], [3, 10], [3, 20]]
    lp = lambda tok, v: [None, {tok: SimpleNamespace(logprob=v)}]  # noqa: E731
    outs = [_request_output(["."], prompt_logprobs=lp(10, -0.1)),
            _request_output(["."], prompt_logprobs=lp(20, -2.5)),
            _request_output(["."], prompt_logprobs=lp(10, -3.0)),
            _request_output(["."], prompt_logprobs=lp(20, -0.05))]
    rows = vllm_backend.choice_logprobs(outs, ["Yes", "No"], [10, 20])
    assert rows == [{"Yes": -0.1, "No": -2.5}, {"Yes": -3.0, "No": -0.05}]
    assert normalize_choices(rows[0])["Yes"] == pytest.approx(
        math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5)))


def test_a_final_assistant_turn_is_continued_not_answered(gen):
    from scoder.llm.base import chat_prompt

    conv = CONVS[0] + [{"role": "assistant", "content": "correctness: "}]
    prompt = chat_prompt(gen.tokenizer, conv)
    assert prompt.endswith("correctness: ")
    assert prompt.count("<|im_start|>assistant") == 1
    (row,) = gen.score_choices([conv], ["1", "2"])
    assert row != gen.score_choices(CONVS[:1], ["1", "2"])[0]


def test_vllm_chat_kwargs_continue_prefills_and_refuse_mixed_batches():
    prefill = CONVS[0] + [{"role": "assistant", "content": "x: "}]
    assert vllm_backend.chat_kwargs(CONVS) == {}
    assert vllm_backend.chat_kwargs([prefill]) == {"add_generation_prompt": False,
                                                   "continue_final_message": True}
    with pytest.raises(ValueError, match="mix"):
        vllm_backend.chat_kwargs([prefill, CONVS[0]])


@pytest.mark.parametrize("native", [True, False])
def test_dtype_fast_is_bfloat16_only_where_the_device_computes_it_natively(monkeypatch, native):
    from scoder.llm import transformers_backend as tb

    monkeypatch.setattr(tb, "native_bf16", lambda device: native)
    assert tb._resolve_dtype("fast", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert tb._resolve_dtype("auto", "cpu") == torch.float32  # exact on CPU whatever the CPU
    with pytest.raises(ValueError, match="auto, fast, float32"):
        tb._resolve_dtype("half", "cpu")
