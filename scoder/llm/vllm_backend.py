"""vLLM backend: the offline ``vllm.LLM`` engine for GPU nodes.

vLLM is imported inside ``VLLMGenerator`` only, so this module loads on a
CPU machine without it.  Building requests and reading outputs are plain
functions (tested with stand-in output objects, since vLLM needs CUDA).
"""
from __future__ import annotations

from .base import (Conversation, Generator, chat_token_ids, ends_with_prefill, first_token_ids,
                   text_token_ids)


def sampling_kwargs(*, temperature: float, top_p: float, max_new_tokens: int, n: int,
                    seed: int) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one generate call."""
    if temperature <= 0:
        # Greedy: the n copies are identical, so ask once (see completions()).
        return dict(n=1, temperature=0.0, top_p=1.0, max_tokens=max_new_tokens, seed=seed)
    return dict(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed)


def chat_kwargs(conversations: list[Conversation]) -> dict:
    """Extra ``LLM.chat`` arguments: continue a final assistant turn (prefill)
    rather than open a new one.  vLLM applies them to the whole batch."""
    prefills = {ends_with_prefill(c) for c in conversations}
    if prefills == {True}:
        return {"add_generation_prompt": False, "continue_final_message": True}
    if prefills == {True, False}:
        raise ValueError("a batch must not mix conversations that end in an assistant "
                         "prefill with ones that do not")
    return {}


def completions(outputs, n: int) -> tuple[list[list[str]], int, int]:
    """(n texts per request, prompt tokens, completion tokens) from ``RequestOutput``s."""
    texts, prompt_tokens, completion_tokens = [], 0, 0
    for out in outputs:
        group = [c.text for c in out.outputs]
        texts.append(group * n if len(group) == 1 and n > 1 else group)
        prompt_tokens += len(out.prompt_token_ids)
        completion_tokens += sum(len(c.token_ids) for c in out.outputs)
    return texts, prompt_tokens, completion_tokens


def choice_prompts(prompt_ids: list[list[int]], choice_ids: list[int]) -> list[dict]:
    """One token prompt per (conversation, choice): the prompt plus the choice's
    first token, whose prompt log-prob is the choice's score."""
    return [{"prompt_token_ids": [*ids, c]} for ids in prompt_ids for c in choice_ids]


def choice_logprobs(outputs, choices: list[str], choice_ids: list[int]) -> list[dict[str, float]]:
    """Read back ``choice_prompts`` outputs (``prompt_logprobs`` set) per conversation."""
    k = len(choices)
    if len(outputs) % k:
        raise ValueError(f"{len(outputs)} outputs do not split into groups of {k} choices")
    results = []
    for start in range(0, len(outputs), k):
        row = {}
        for choice, cid, out in zip(choices, choice_ids, outputs[start:start + k]):
            row[choice] = float(out.prompt_logprobs[-1][cid].logprob)
        results.append(row)
    return results


class VLLMGenerator(Generator):
    """A model served by vLLM's offline engine, tensor-parallel over GPUs."""

    def __init__(self, model: str, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 dtype: str = "auto"):
        super().__init__(model)
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError("backend 'vllm' needs the vllm package (CUDA only): "
                              "`pip install vllm` on the GPU node, or set backend: "
                              "transformers") from e
        self.engine = LLM(model=model, tensor_parallel_size=tensor_parallel_size,
                          gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=max_model_len,
                          dtype="auto" if dtype == "fast" else dtype)  # vLLM's GPUs compute bf16 natively
        self.tokenizer = self.engine.get_tokenizer()

    def generate(self, conversations: list[Conversation], *, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 512, n: int = 1,
                 seed: int = 0) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_kwargs(temperature=temperature, top_p=top_p,
                                                  max_new_tokens=max_new_tokens, n=n, seed=seed))
        outputs = self.engine.chat(conversations, params, use_tqdm=True,
                                   **chat_kwargs(conversations))
        texts, prompt_tokens, completion_tokens = completions(outputs, n)
        self._usage["prompt_tokens"] += prompt_tokens
        self._usage["completion_tokens"] += completion_tokens
        self._usage["requests"] += len(conversations)
        return texts

    def complete(self, prompts: list[str], *, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 512, n: int = 1, seed: int = 0,
                 stop: list[str] | None = None) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(**sampling_kwargs(temperature=temperature, top_p=top_p,
                                                  max_new_tokens=max_new_tokens, n=n, seed=seed),
                                stop=list(stop or []))
        # vLLM tokenizes a text prompt with the tokenizer's special tokens (BOS), as
        # a base model expects, and leaves the stop string out of the text.
        outputs = self.engine.generate(prompts, params, use_tqdm=True)
        texts, prompt_tokens, completion_tokens = completions(outputs, n)
        self._usage["prompt_tokens"] += prompt_tokens
        self._usage["completion_tokens"] += completion_tokens
        self._usage["requests"] += len(prompts)
        return texts

    @property
    def has_chat_template(self) -> bool:
        return getattr(self.tokenizer, "chat_template", None) is not None

    def score_choices(self, conversations: list[Conversation],
                      choices: list[str]) -> list[dict[str, float]]:
        return self._score_next_token(chat_token_ids(self.tokenizer, conversations), choices)

    def score_continuations(self, prompts: list[str], choices: list[str]) -> list[dict[str, float]]:
        return self._score_next_token(text_token_ids(self.tokenizer, prompts), choices)

    def _score_next_token(self, prompt_ids: list[list[int]], choices: list[str]) -> list[dict[str, float]]:
        from vllm import SamplingParams

        choice_ids = first_token_ids(self.tokenizer, choices)
        # prompt_logprobs=1 returns the actual token's log-prob at every
        # position; one generated token is the least vLLM will run.
        params = SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outputs = self.engine.generate(choice_prompts(prompt_ids, choice_ids), params,
                                       use_tqdm=True)
        self._usage["prompt_tokens"] += sum(len(ids) + 1 for ids in prompt_ids) * len(choices)
        self._usage["requests"] += len(outputs)
        return choice_logprobs(outputs, choices, choice_ids)
