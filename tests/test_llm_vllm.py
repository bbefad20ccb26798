"""The vLLM backend without vLLM (it needs CUDA): the requests it builds (SamplingParams, chat
arguments, token prompts) and how it reads vLLM's outputs, through ``VLLMGenerator`` itself
with ``vllm.LLM`` replaced by a recording stand-in (``tests/vllm_fakes.py``)."""
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from scoder.llm import make_generator
from scoder.llm.base import chat_prompt, normalize_choices
from vllm_fakes import FakeLLM, SamplingParams, fake_vllm_module

CONVS = [[{"role": "user", "content": "Write add(a, b)."}],
         [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse a string."}]]
PREFILLED = [{"role": "user", "content": "Rate it."}, {"role": "assistant", "content": "correctness: "}]
TEXTS = ["def add(a, b):\n    return a + b\n```\nDone.", "s[::-1]", "def f():\n    pass"]


@pytest.fixture
def tokenizer(micro_model):
    return AutoTokenizer.from_pretrained(micro_model)


@pytest.fixture
def engine(monkeypatch, tokenizer):
    """make_generator's vLLM backend over a FakeLLM (returned), as vllm.LLM would be."""
    llm = FakeLLM(tokenizer, TEXTS)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(llm))
    generator = make_generator({"backend": "vllm", "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
                                "tensor_parallel_size": 2, "gpu_memory_utilization": 0.85, "max_model_len": 8192,
                                "dtype": "bfloat16"})
    return generator, llm


def test_the_backend_module_loads_without_vllm():
    code = "import sys; import scoder.llm.vllm_backend; assert 'vllm' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


def test_engine_is_built_from_the_backend_entry(engine):
    _, llm = engine
    assert llm.init == {"model": "Qwen/Qwen2.5-Coder-7B-Instruct", "tensor_parallel_size": 2,
                        "gpu_memory_utilization": 0.85, "max_model_len": 8192, "dtype": "bfloat16"}


def test_sampled_chat_requests_n_seeded_samples_and_counts_tokens(engine, tokenizer):
    generator, llm = engine
    texts = generator.generate(CONVS, temperature=0.2, top_p=0.95, max_new_tokens=512, n=3, seed=7)
    kind, messages, params, chat = llm.calls[-1]
    assert kind == "chat" and messages == CONVS
    assert params.given == {"n": 3, "temperature": 0.2, "top_p": 0.95, "max_tokens": 512, "seed": 7}
    assert chat == {"add_generation_prompt": True, "continue_final_message": False}
    assert texts == [TEXTS, TEXTS]   # n texts per conversation, in order
    prompt_tokens = sum(len(tokenizer(chat_prompt(tokenizer, c), add_special_tokens=False)["input_ids"])
                        for c in CONVS)
    completion_tokens = 2 * sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in TEXTS)  # + EOS
    assert generator.usage["prompt_tokens"] == prompt_tokens
    assert generator.usage["completion_tokens"] == completion_tokens and generator.usage["requests"] == 2


def test_greedy_asks_once_and_repeats_the_answer(engine):
    generator, llm = engine
    texts = generator.generate(CONVS[:1], temperature=0.0, top_p=0.95, max_new_tokens=64, n=3, seed=1)
    assert llm.calls[-1][2].given == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 1}
    assert texts == [[TEXTS[0]] * 3]


def test_a_prefilled_answer_is_continued_and_a_mixed_batch_refused(engine):
    generator, llm = engine
    generator.generate([PREFILLED], max_new_tokens=8)
    assert llm.calls[-1][3] == {"add_generation_prompt": False, "continue_final_message": True}
    with pytest.raises(ValueError, match="must not mix"):
        generator.generate([PREFILLED, CONVS[0]])


def test_raw_completion_stops_at_the_stop_string_and_reports_length(engine, tokenizer):
    generator, llm = engine
    out = generator.complete(["def add(a, b):\n"], max_new_tokens=512, stop=["\n```", "\nclass "])
    kind, prompts, params, _ = llm.calls[-1]
    assert kind == "generate" and prompts == ["def add(a, b):\n"] and params.stop == ["\n```", "\nclass "]
    assert out == [["def add(a, b):\n    return a + b"]]   # vLLM cut the text before the stop string
    assert generator.usage["prompt_tokens"] == len(tokenizer("def add(a, b):\n")["input_ids"])
    short = generator.complete(["x"], max_new_tokens=2, n=2, temperature=0.8, seed=3)
    assert llm.calls[-1][2].given == {"n": 2, "temperature": 0.8, "top_p": 1.0, "max_tokens": 2, "seed": 3,
                                      "stop": []}
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) <= 2 for t in short[0])


@pytest.mark.parametrize("flat", [False, True], ids=["list", "flat_logprobs"])
def test_choice_scores_read_the_last_prompt_logprob(engine, tokenizer, flat):
    generator, llm = engine
    llm.flat = flat
    yes, no = (tokenizer.encode(c, add_special_tokens=False)[0] for c in ("Yes", "No"))
    llm.choice_logprobs = {yes: -0.3, no: -1.4}
    rows = generator.score_choices(CONVS, ["Yes", "No"])
    kind, prompts, params, _ = llm.calls[-1]
    assert params.given == {"max_tokens": 1, "prompt_logprobs": 1, "temperature": 0.0}
    ids = [tokenizer(chat_prompt(tokenizer, c), add_special_tokens=False)["input_ids"] for c in CONVS]
    # one token prompt per (conversation, choice): the prompt and the choice's first token
    assert prompts == [{"prompt_token_ids": [*i, c]} for i in ids for c in (yes, no)]
    assert rows == [{"Yes": -0.3, "No": -1.4}] * 2
    assert normalize_choices(rows[0])["Yes"] > 0.7
    assert generator.usage["prompt_tokens"] == sum(len(i) + 1 for i in ids) * 2


def test_sampling_params_reject_what_vllm_rejects():
    with pytest.raises(TypeError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=5)   # the transformers name, not vLLM's
