"""A micro model for tests: a randomly initialised Llama of a few hundred thousand parameters
with SmolLM2's tokenizer and chat template, so tests exercise the real code paths in seconds."""
from __future__ import annotations

from pathlib import Path

from scoder.models import GGUF_FILE, smollm2_gguf_dir


def build_micro_model(out_dir: str | Path, tokenizer_dir: str | Path | None = None,
                      hidden_size: int = 64, num_layers: int = 2, seed: int = 0,
                      initializer_range: float = 0.02, chat_template: bool = True) -> Path:
    """A random-weight Llama with SmolLM2's tokenizer and chat template (for tests).
    A larger ``initializer_range`` (0.2) makes its next-token distribution depend
    strongly on the input, so numerical checks at 1e-4 can fail; without
    ``chat_template`` the tokenizer is that of a base model."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_dir is None:
        tok = AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=GGUF_FILE)
    else:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    if not chat_template:
        tok.chat_template = None
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
