"""The one interface every LLM backend implements, and helpers they share.

A ``Generator`` turns chat conversations (lists of ``{"role", "content"}``
dicts) into completions, and scores the next-token log-probabilities of a few
answer strings (the yes/no quality classifier).  Backends: transformers
(CPU/GPU), vLLM (GPU), and any OpenAI-compatible HTTP server.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

Conversation = list[dict]


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed for sub-task ``keys`` of a run seeded with ``seed``.

    NumPy's SeedSequence mixes the integers, so neighbouring batches (or a run
    with seed+1) do not get correlated random streams.
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] & 0x7FFFFFFF)


def normalize_choices(logprobs: dict[str, float]) -> dict[str, float]:
    """Probabilities of the choices renormalised over the choices alone."""
    top = max(logprobs.values())
    weights = {c: math.exp(lp - top) for c, lp in logprobs.items()}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


class Generator(ABC):
    """Chat completion and choice scoring over one model; ``model`` names it."""

    def __init__(self, model: str):
        self.model = model
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "cached": 0}

    @property
    def usage(self) -> dict:
        """Cumulative token counts, requests sent, cache hits and estimated cost."""
        return {**self._usage, "est_cost_usd": self._cost()}

    def _cost(self) -> float:
        # Local models cost compute, not money; the OpenAI backend overrides.
        return 0.0

    # A conversation whose last turn is the assistant's is continued, not
    # answered (see ``chat_prompt``); the OpenAI chat API cannot do that.

    @abstractmethod
    def generate(self, conversations: list[Conversation], *, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 512, n: int = 1,
                 seed: int = 0) -> list[list[str]]:
        """``n`` completions per conversation (temperature 0 means greedy)."""

    def complete(self, prompts: list[str], *, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 512, n: int = 1, seed: int = 0,
                 stop: list[str] | None = None) -> list[list[str]]:
        """``n`` continuations of each raw text prompt (no chat template: how a base
        model is prompted), each cut before the first of the ``stop`` strings."""
        raise LLMConfigError(f"backend {type(self).__name__} cannot complete raw prompts "
                             "(base-model prompting); use backend transformers or vllm")

    @abstractmethod
    def score_choices(self, conversations: list[Conversation],
                      choices: list[str]) -> list[dict[str, float]]:
        """Per conversation, the log-prob of each choice's first token as the
        assistant's next token after the chat-templated prompt."""

    def score_continuations(self, prompts: list[str], choices: list[str]) -> list[dict[str, float]]:
        """Per raw text prompt (no chat template: how a base model is prompted), the
        log-prob of each choice's first token as the next token."""
        raise LLMConfigError(f"backend {type(self).__name__} cannot score raw prompts "
                             "(base-model prompting); use backend transformers or vllm")

    @property
    def has_chat_template(self) -> bool:
        """Whether the model has a chat template (instruct) or takes plain text (base)."""
        return True


def first_token_ids(tokenizer, choices: list[str]) -> list[int]:
    """First token id of each choice as it would start the assistant turn."""
    ids = []
    for choice in choices:
        toks = tokenizer.encode(choice, add_special_tokens=False)
        if not toks:
            raise ValueError(f"choice {choice!r} encodes to no tokens")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"choices {choices} share a first token; score_choices "
                         "cannot tell them apart")
    return ids


def ends_with_prefill(conversation: Conversation) -> bool:
    """Whether the conversation ends in a partial assistant turn to continue."""
    return bool(conversation) and conversation[-1]["role"] == "assistant"


def chat_prompt(tokenizer, conversation: Conversation) -> str:
    """The chat-templated prompt text, ending where the assistant's reply starts,
    or, when the last turn is the assistant's, inside it (a prefill such as
    "correctness: " that the reply continues)."""
    prefill = ends_with_prefill(conversation)
    return tokenizer.apply_chat_template(conversation, add_generation_prompt=not prefill,
                                         continue_final_message=prefill, tokenize=False)


def chat_token_ids(tokenizer, conversations: list[Conversation]) -> list[list[int]]:
    """Token ids of each chat-templated prompt; the template already holds any BOS, so no
    special tokens are added."""
    return [tokenizer(chat_prompt(tokenizer, c), add_special_tokens=False)["input_ids"] for c in conversations]


def text_token_ids(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Token ids of each raw text prompt, with the tokenizer's special tokens (BOS) as in
    pre-training: how a base model is prompted."""
    return [tokenizer(p)["input_ids"] for p in prompts]


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cut = min([text.find(s) for s in stop or () if s in text] + [len(text)])
    return text[:cut]


class LLMConfigError(RuntimeError):
    """A failure the user fixes in the generator's config; the message names the setting."""
