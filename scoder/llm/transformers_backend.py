"""transformers backend: batched chat generation on CPU or GPU.

Left padding lets a batch of prompts of different lengths generate together, and
prompts are batched longest first so that a batch pads little; the chat template
comes from the tokenizer; sampling is seeded per batch.  Scoring (``score_choices``)
runs each prompt prefix that several prompts share once and reuses its key/value
cache (``scoder.llm.prefix``).
"""
from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, GenerationConfig

from scoder.device import attention_kwargs, native_bf16

from .base import (Conversation, Generator, chat_prompt, chat_token_ids, cut_at_stop, derive_seed, first_token_ids,
                   text_token_ids)
from .prefix import MIN_SHARED, common_prefix_length, prefix_plan

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that has it (half the memory), float32 on CPU (exact);
    ``fast``: bfloat16 wherever the device computes in it natively (also a CPU with AMX or
    AVX512-BF16: about 3x float32's speed there), else float32."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") and native_bf16(device) else torch.float32
    if dtype == "fast":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of auto, fast, {', '.join(_DTYPES)}; got {dtype!r}")
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
        # (tokens, key/value cache) of the last scoring call's shared prefix
        self._last_root: tuple[list[int], DynamicCache | None] = ([], None)

    @property
    def has_chat_template(self) -> bool:
        return self.tokenizer.chat_template is not None

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
        # Prompts of similar length batch together (longest first), so a batch pads little;
        # the results go back to the callers' order.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[list[str] | None] = [None] * len(prompts)
        for b, indices in self._batches(order, "generate"):
            batch = [prompts[i] for i in indices]
            enc = self._encode(batch, add_special_tokens)
            torch.manual_seed(derive_seed(seed, b))
            out = self.lm.generate(**enc, generation_config=config, **stopping)
            new = out[:, enc["input_ids"].shape[1]:]
            texts = [cut_at_stop(t, stop) for t in
                     self.tokenizer.batch_decode(new, skip_special_tokens=True)]
            for k, i in enumerate(indices):
                group = texts[k * per_prompt:(k + 1) * per_prompt]
                # Greedy decoding is deterministic: one pass serves all n.
                results[i] = group if per_prompt == n else group * n
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
        return self._score_next_token(chat_token_ids(self.tokenizer, conversations), choices)

    @torch.no_grad()
    def score_continuations(self, prompts: list[str], choices: list[str]) -> list[dict[str, float]]:
        return self._score_next_token(text_token_ids(self.tokenizer, prompts), choices)

    def _score_next_token(self, ids: list[list[int]], choices: list[str]) -> list[dict[str, float]]:
        """Log-probs of the choices' first tokens after each prompt (token ids).  Each
        prefix the prompts share (``prefix_plan``) runs once and its key/value cache
        serves all of them; the rest of each prompt runs in batches of similar length."""
        choice_ids = first_token_ids(self.tokenizer, choices)
        root, groups = prefix_plan(ids)
        results: list[dict[str, float] | None] = [None] * len(ids)
        root_cache = self._root_cache(ids[0][:root]) if root else None
        batches = [(group, batch) for group in groups
                   for batch in self._suffix_batches(group.members, ids)]
        prefix_of = None
        for group, batch in tqdm(batches, desc="score", unit="batch", disable=len(batches) <= 1):
            if prefix_of is not group:  # each group's own prefix once, on top of the root's
                prefix_of, cache = group, root_cache
                if group.prefix > root:
                    cache = self._prefill(ids[group.members[0]][root:group.prefix], root_cache, root)
            logprobs = self._next_token_logprobs([ids[i][group.prefix:] for i in batch], cache,
                                                 group.prefix)[:, choice_ids].tolist()
            for i, row in zip(batch, logprobs):
                results[i] = dict(zip(choices, row))
        self._usage["prompt_tokens"] += sum(map(len, ids))
        self._usage["requests"] += len(ids)
        return results

    def _suffix_batches(self, members: list[int], ids: list[list[int]]) -> list[list[int]]:
        """``members`` in batches of ``batch_size``, longest rest first, so each batch pads little."""
        order = sorted(members, key=lambda i: -len(ids[i]))
        return [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]

    def _root_cache(self, tokens: list[int]):
        """The cache of ``tokens``, starting from the previous call's root as far as the two
        agree: a scoring stage sends the same few-shot prefix batch after batch."""
        kept_tokens, kept = self._last_root
        shared = common_prefix_length(kept_tokens, tokens)
        if shared < MIN_SHARED:
            cache = self._prefill(tokens)
        elif shared == len(tokens) == len(kept_tokens):
            cache = kept
        else:
            base = copy.deepcopy(kept)
            if shared < len(kept_tokens):
                base.crop(shared - len(kept_tokens))  # a negative size removes that many tokens
            cache = self._prefill(tokens[shared:], base, shared) if shared < len(tokens) else base
        self._last_root = (tokens, cache)
        return cache

    def _prefill(self, tokens: list[int], cache=None, start: int = 0):
        """The key/value cache of ``tokens`` (batch 1) after ``start`` tokens already in
        ``cache`` (left untouched)."""
        cache = copy.deepcopy(cache) if cache is not None else DynamicCache()
        self.lm(input_ids=torch.tensor([tokens], device=self.device), past_key_values=cache,
                position_ids=torch.arange(start, start + len(tokens), device=self.device)[None],
                use_cache=True, logits_to_keep=1)
        return cache

    def _next_token_logprobs(self, rests: list[list[int]], cache, start: int) -> torch.Tensor:
        """Next-token log-probs (batch x vocab) after each prompt's last token, the prompts
        being ``start`` cached tokens followed by ``rests``, right-padded in one batch (a pad
        after the last real token changes nothing before it)."""
        lengths = torch.tensor([len(r) for r in rests], device=self.device)
        width = int(lengths.max())
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rests], device=self.device)
        mask = (torch.arange(width, device=self.device)[None] < lengths[:, None]).long()
        kwargs = {}
        if cache is not None:
            cache = copy.deepcopy(cache)
            cache.batch_repeat_interleave(len(rests))
            mask = torch.cat([mask.new_ones(len(rests), start), mask], dim=1)
            kwargs = {"past_key_values": cache, "use_cache": True}
        positions = torch.arange(start, start + width, device=self.device)[None].expand(len(rests), -1)
        # Only each prompt's last position goes through the output layer (all positions x vocab is GBs).
        logits = self.lm(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         logits_to_keep=(lengths - 1)[:, None], **kwargs).logits[:, 0, :]
        return torch.log_softmax(logits.float(), dim=-1)
