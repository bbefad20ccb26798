"""transformers backend: batched chat generation on CPU or GPU.

Left padding lets a batch of prompts of different lengths generate together;
the chat template comes from the tokenizer; sampling is seeded per batch.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from scoder.device import attention_kwargs

from .base import Conversation, Generator, chat_prompt, cut_at_stop, derive_seed, first_token_ids

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        # bf16 halves memory on GPUs; on CPU float32 is both faster and exact.
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(_DTYPES)}; got {dtype!r}")
    return _DTYPES[dtype]


class TransformersGenerator(Generator):
    """A Hugging Face causal LM run with ``model.generate``."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 8,
                 dtype: str = "auto", attn_implementation: str = "auto"):
        super().__init__(model)
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm = AutoModelForCausalLM.from_pretrained(
            model, dtype=_resolve_dtype(dtype, self.device),
            **attention_kwargs(attn_implementation)).to(self.device).eval()
        # Stop at the end of the assistant turn: the tokenizer's eos (e.g.
        # <|im_end|>) and whatever the model's generation config calls eos.
        eos = self.lm.generation_config.eos_token_id
        eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        self.eos_ids = sorted({self.tokenizer.eos_token_id, *eos} - {None})

    def _encode(self, prompts: list[str], add_special_tokens: bool = False):
        # The chat template already holds any BOS, so no special tokens for chats.
        return self.tokenizer(prompts, return_tensors="pt", padding=True,
                              add_special_tokens=add_special_tokens).to(self.device)

    def _batches(self, items: list, desc: str):
        starts = range(0, len(items), self.batch_size)
        for b, start in enumerate(tqdm(starts, desc=desc, unit="batch",
                                       disable=len(starts) <= 1)):
            yield b, items[start:start + self.batch_size]

    def _generation_config(self, temperature, top_p, max_new_tokens, n) -> GenerationConfig:
        common = dict(max_new_tokens=max_new_tokens, eos_token_id=self.eos_ids,
                      pad_token_id=self.tokenizer.pad_token_id)
        if temperature <= 0:
            return GenerationConfig(do_sample=False, num_return_sequences=1, **common)
        # top_k=0 switches off transformers' default top-k of 50, which vLLM and
        # the OpenAI API do not apply: the same settings mean the same sampler.
        return GenerationConfig(do_sample=True, temperature=temperature, top_p=top_p,
                                top_k=0, num_return_sequences=n, **common)

    @torch.no_grad()
    def generate(self, conversations: list[Conversation], *, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 512, n: int = 1,
                 seed: int = 0) -> list[list[str]]:
        prompts = [chat_prompt(self.tokenizer, c) for c in conversations]
        return self._generate(prompts, temperature, top_p, max_new_tokens, n, seed)

    @torch.no_grad()
    def complete(self, prompts: list[str], *, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 512, n: int = 1, seed: int = 0,
                 stop: list[str] | None = None) -> list[list[str]]:
        # A raw prompt gets the tokenizer's special tokens (BOS) as in pre-training.
        return self._generate(prompts, temperature, top_p, max_new_tokens, n, seed,
                              stop=stop, add_special_tokens=True)

    def _generate(self, prompts: list[str], temperature: float, top_p: float, max_new_tokens: int,
                  n: int, seed: int, stop: list[str] | None = None,
                  add_special_tokens: bool = False) -> list[list[str]]:
        config = self._generation_config(temperature, top_p, max_new_tokens, n)
        stopping = {}
        if stop:
            config.stop_strings = list(stop)
            stopping = {"tokenizer": self.tokenizer}
        per_prompt = config.num_return_sequences
        results: list[list[str]] = []
        for b, batch in self._batches(prompts, "generate"):
            enc = self._encode(batch, add_special_tokens)
            torch.manual_seed(derive_seed(seed, b))
            out = self.lm.generate(**enc, generation_config=config, **stopping)
            new = out[:, enc["input_ids"].shape[1]:]
            texts = [cut_at_stop(t, stop) for t in
                     self.tokenizer.batch_decode(new, skip_special_tokens=True)]
            for i in range(len(batch)):
                group = texts[i * per_prompt:(i + 1) * per_prompt]
                # Greedy decoding is deterministic: one pass serves all n.
                results.append(group if per_prompt == n else group * n)
            self._usage["prompt_tokens"] += int(enc["attention_mask"].sum())
            self._usage["completion_tokens"] += self._completion_tokens(new)
            self._usage["requests"] += len(batch)
        return results

    def _completion_tokens(self, new: torch.Tensor) -> int:
        """Generated tokens up to and including the first eos of each row."""
        if new.shape[1] == 0:
            return 0
        is_eos = torch.isin(new, torch.tensor(self.eos_ids, device=new.device))
        first = is_eos.int().argmax(dim=1) + 1
        return int(torch.where(is_eos.any(dim=1), first, new.shape[1]).sum())

    @torch.no_grad()
    def score_choices(self, conversations: list[Conversation],
                      choices: list[str]) -> list[dict[str, float]]:
        choice_ids = first_token_ids(self.tokenizer, choices)
        prompts = [chat_prompt(self.tokenizer, c) for c in conversations]
        results = []
        for _, batch in self._batches(prompts, "score"):
            enc = self._encode(batch)
            # Positions count real tokens only, so a left-padded prompt is
            # scored exactly as it would be alone.
            positions = (enc["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
            # Only the last position's logits are needed (all positions x vocab is GBs).
            logits = self.lm(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, choice_ids].tolist()
            results.extend(dict(zip(choices, row)) for row in logprobs)
            self._usage["prompt_tokens"] += int(enc["attention_mask"].sum())
            self._usage["requests"] += len(batch)
        return results
