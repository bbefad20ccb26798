"""vLLM's request and output objects for tests on machines where vLLM cannot run (no CUDA).

``Logprob``, ``CompletionOutput`` and ``RequestOutput`` have the attributes of vLLM's own
(``vllm/logprobs.py``, ``vllm/outputs.py``), and ``FlatLogprobs`` behaves as vLLM's flat
container does (``SamplingParams(flat_logprobs=True)``): a sequence of ``{token_id: Logprob}``
per position, empty for a prompt's first token where the list form has ``None``.
``SamplingParams`` accepts only vLLM's field names, so a misspelt argument fails as there.
``FakeLLM`` stands in for ``vllm.LLM``: it records each call and answers with outputs built
the way vLLM builds them (prompt token ids from the chat template, the stop string cut from
the text, ``finish_reason`` / ``stop_reason``), from canned texts.  These objects are made
here, not recorded from a vLLM run: no vLLM has run for this project (README).
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any | None
    routed_experts: Any | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    lora_request: Any | None = None
    kv_transfer_params: dict | None = None


class RequestOutput:
    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int] | None,
                 prompt_logprobs: Any | None, outputs: list[CompletionOutput], finished: bool, metrics=None,
                 lora_request=None, encoder_prompt=None, encoder_prompt_token_ids=None, num_cached_tokens=None):
        self.request_id, self.prompt, self.prompt_token_ids = request_id, prompt, prompt_token_ids
        self.prompt_logprobs, self.outputs, self.finished = prompt_logprobs, outputs, finished
        self.metrics, self.lora_request, self.num_cached_tokens = metrics, lora_request, num_cached_tokens
        self.encoder_prompt, self.encoder_prompt_token_ids = encoder_prompt, encoder_prompt_token_ids


class FlatLogprobs:
    """The flat form: all positions' entries in parallel lists, one index range per position."""

    def __init__(self, positions: list[dict[int, Logprob] | None]):
        self.start_indices, self.end_indices = [], []
        self.token_ids, self.logprobs, self.ranks, self.decoded_tokens = [], [], [], []
        for entries in positions:
            self.start_indices.append(len(self.token_ids))
            for token, lp in (entries or {}).items():
                self.token_ids.append(token)
                self.logprobs.append(lp.logprob)
                self.ranks.append(lp.rank)
                self.decoded_tokens.append(lp.decoded_token)
            self.end_indices.append(len(self.token_ids))

    def __len__(self) -> int:
        return len(self.start_indices)

    def __getitem__(self, position: int) -> dict[int, Logprob]:
        return {self.token_ids[i]: Logprob(self.logprobs[i], self.ranks[i], self.decoded_tokens[i])
                for i in range(self.start_indices[position], self.end_indices[position])}


# vLLM's SamplingParams fields (vllm/sampling_params.py) that a caller may set
SAMPLING_FIELDS = {
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k", "min_p",
    "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs", "prompt_logprobs",
    "flat_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens",
    "include_stop_str_in_output", "output_kind", "structured_outputs", "logit_bias", "allowed_token_ids",
    "extra_args", "bad_words", "logprob_token_ids"}


class SamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"Unexpected keyword argument(s) {sorted(unknown)}")
        self.n, self.temperature, self.top_p, self.max_tokens, self.seed = 1, 1.0, 1.0, 16, None
        self.stop, self.prompt_logprobs, self.logprobs, self.flat_logprobs = None, None, None, False
        self.__dict__.update(kwargs)
        self.given = dict(kwargs)


@dataclass
class FakeLLM:
    """``vllm.LLM``: records its construction and calls; answers from ``texts`` (cycled)."""
    tokenizer: Any
    texts: list[str]
    choice_logprobs: dict[int, float] = field(default_factory=dict)   # token id -> logprob at the last position
    flat: bool = False
    init: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)

    def get_tokenizer(self):
        return self.tokenizer

    def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None, chat_template=None,
             chat_template_content_format="auto", add_generation_prompt=True, continue_final_message=False,
             tools=None, chat_template_kwargs=None, mm_processor_kwargs=None):
        self.calls.append(("chat", messages, sampling_params, {"add_generation_prompt": add_generation_prompt,
                                                               "continue_final_message": continue_final_message}))
        prompts = [self.tokenizer.apply_chat_template(m, add_generation_prompt=add_generation_prompt,
                                                      continue_final_message=continue_final_message, tokenize=False)
                   for m in messages]
        # the chat template holds any BOS: vLLM tokenizes it without adding special tokens
        return [self._answer(i, p, self._ids(p, False), sampling_params) for i, p in enumerate(prompts)]

    def generate(self, prompts, sampling_params=None, use_tqdm=True, lora_request=None, priority=None):
        self.calls.append(("generate", prompts, sampling_params, {}))
        out = []
        for i, p in enumerate(prompts):
            if isinstance(p, dict):   # a TokensPrompt
                out.append(self._answer(i, None, list(p["prompt_token_ids"]), sampling_params))
            else:                     # a text prompt: tokenized with the tokenizer's special tokens
                out.append(self._answer(i, p, self._ids(p, True), sampling_params))
        return out

    def _ids(self, text: str, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _answer(self, i: int, prompt, prompt_ids: list[int], params: SamplingParams) -> RequestOutput:
        completions = []
        for j in range(params.n):
            text = self.texts[(i * params.n + j) % len(self.texts)]
            finish, stop_reason = "stop", None
            cut = [text.index(s) for s in params.stop or () if s in text]
            if cut:
                stop_reason = next(s for s in params.stop if text.index(s) == min(cut))
                text = text[:min(cut)]   # vLLM leaves the stop string out of the text
            ids = self._ids(text, False)
            if stop_reason is None:
                if len(ids) >= params.max_tokens:
                    ids, finish = ids[:params.max_tokens], "length"
                    text = self.tokenizer.decode(ids)
                else:
                    ids = ids + [self.tokenizer.eos_token_id]   # generation ended at EOS (not in the text)
            completions.append(CompletionOutput(index=j, text=text, token_ids=ids, cumulative_logprob=None,
                                                logprobs=None, finish_reason=finish, stop_reason=stop_reason))
        prompt_logprobs = None
        if params.prompt_logprobs is not None:
            # position 0 has no logprob; each other holds the prompt's own token (and the top ones)
            positions = [None] + [{t: Logprob(-1.0, rank=1)} for t in prompt_ids[1:]]
            last = prompt_ids[-1]
            positions[-1] = {last: Logprob(self.choice_logprobs[last], rank=2), 0: Logprob(-0.1, rank=1)}
            prompt_logprobs = FlatLogprobs(positions) if self.flat else positions
        return RequestOutput(str(i), prompt, prompt_ids, prompt_logprobs, completions, finished=True)


def fake_vllm_module(llm: FakeLLM) -> types.ModuleType:
    """A module to put in ``sys.modules["vllm"]``: ``LLM(...)`` returns ``llm``, recording its arguments."""
    module = types.ModuleType("vllm")

    def LLM(model, **kwargs):   # noqa: N802 (vLLM's name)
        llm.init = {"model": model, **kwargs}
        return llm

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module
