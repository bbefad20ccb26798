"""Response perplexity under the reference model (Figure 4's perplexity selectors).

The paper compares influence-based selection with picking the candidates of lowest
or highest perplexity without saying under which model; we use the LoRA reference
model (trained on D_p), so "low perplexity" means "most like D_p to that model".
The loss is the response-token loss of ``scoder.influence.gradients`` (the SFT loss).
"""
from __future__ import annotations

import math

import torch
from tqdm import tqdm

from scoder.data import to_chat
from scoder.influence.features import model_dtype, resolve_device
from scoder.influence.gradients import collate, encode_chat, load_reference_model, load_tokenizer, response_losses


def perplexities(model: str, adapter: str, samples: list[dict], *, max_length: int = 4096,
                 batch_size: int = 4, device: str = "auto", dtype: str = "auto",
                 attn_implementation: str | None = None) -> list[float | None]:
    """exp(mean response-token loss) of each sample; None for a sample without response tokens.
    ``device`` "auto": CUDA when visible; ``dtype`` "auto": float32 on CPU, bfloat16 on CUDA."""
    device = resolve_device(device)
    tok = load_tokenizer(model, adapter)
    ref = load_reference_model(model, adapter, device, model_dtype(dtype, device), attn_implementation)
    encoded = [encode_chat(tok, to_chat(s, "instruction"), max_length) for s in samples]
    out: list[float | None] = []
    with torch.no_grad():
        for i in tqdm(range(0, len(encoded), batch_size), desc="perplexity", unit="batch"):
            chunk = encoded[i:i + batch_size]
            losses = response_losses(ref, collate(chunk, tok.pad_token_id, device)).tolist()
            out += [math.exp(loss) if e["n_response_tokens"] else None for e, loss in zip(chunk, losses)]
    return out
