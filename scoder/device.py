"""A job's device settings: its `resources:` family's GPUs, dtype, attention and checkpointing.

Each run's ``resources:`` families (``train``, ``generate``, ``gradients``, ``cpu``) say
what a job gets from the cluster (``gpu``, ``cpus``, ...) and how it runs its models::

    train: {gpu: 8, ..., dtype: bfloat16, attn_implementation: sdpa, gradient_checkpointing: true}

* ``dtype``: ``train``: the mixed precision of fine-tuning (bfloat16 / float16 autocast over
  float32 weights, or float32); ``generate``: the generator's weights, unless its backend
  entry names a dtype; ``gradients``: the reference model's weights.  ``auto`` (the default):
  bfloat16 on a GPU that has it, float32 on CPU.
* ``attn_implementation``: transformers' attention (``sdpa``, ``eager``,
  ``flash_attention_2``); ``auto`` is transformers' default for the model (sdpa where the
  model supports it).  vLLM picks its own attention kernels.
* ``gradient_checkpointing``: recompute activations in the backward pass (fine-tuning).

``rules/common.smk`` hands a job these settings as Snakemake resources (so
``--set-resources target:attn_implementation=eager`` overrides one rule), with ``family``,
the family's path in the config.  ``scoder.smk.stage`` reads them (``from_resources``) and
stops a job at once when its family asks for GPUs it does not see (``require_gpus``),
instead of letting it run on CPU.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3")


def native_bf16(device: str) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA GPU that supports it, a CPU
    with AMX or AVX512-BF16 (elsewhere bfloat16 is emulated and slower than float32)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class GPUUnavailable(RuntimeError):
    """A job whose family asks for GPUs sees fewer (none, usually): the message says how to fix it."""


def gres_gpus(gres: str | None) -> int:
    """GPUs a SLURM ``gres`` asks for: ``gpu`` -> 1, ``gpu:a100:8`` / ``gpu:8`` -> 8, others 0."""
    if not gres or not str(gres).startswith("gpu"):
        return 0
    count = re.fullmatch(r"gpu(?::[A-Za-z0-9_.]+)??(?::(\d+))?", str(gres))
    return int(count.group(1)) if count and count.group(1) else 1


@dataclass(frozen=True)
class DeviceSettings:
    """How one job runs its models (see the module docstring)."""
    family: str = "local"
    gpus: int = 0
    dtype: str = "auto"
    attn_implementation: str = "auto"
    gradient_checkpointing: bool = False

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"{self.family}.dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.attn_implementation not in ATTENTION:
            raise ValueError(f"{self.family}.attn_implementation: {self.attn_implementation!r} is not one of "
                             f"{', '.join(ATTENTION)}")

    @classmethod
    def from_resources(cls, resources) -> "DeviceSettings":
        """The settings a Snakemake job was given (``snakemake.resources``); unset ones are the defaults."""
        get = resources.get
        flag = get("gradient_checkpointing", 0)
        return cls(family=str(get("family", "local")),
                   gpus=int(get("gpu", 0) or 0) or gres_gpus(get("gres")),
                   dtype=str(get("dtype", "auto")), attn_implementation=str(get("attn_implementation", "auto")),
                   gradient_checkpointing=str(flag).lower() in ("1", "true"))

    def require_gpus(self) -> None:
        """Raise ``GPUUnavailable`` when this job asks for more GPUs than torch sees."""
        if self.gpus <= 0:
            return
        import torch

        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found >= self.gpus:
            return
        build = f"torch {torch.__version__}" + (" (a CPU-only build)" if torch.version.cuda is None else "")
        raise GPUUnavailable(
            f"{self.family} asks for {self.gpus} GPU(s), but this job sees {found} ({build}; "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}). It stops rather than run "
            f"on CPU. Run it where the GPUs are (snakemake --profile slurm, with gpu or gres in {self.family}), "
            f"install torch's CUDA build there, or run it on CPU on purpose: set {self.family}.gpu: 0 "
            f"(or --set-resources <rule>:gpu=0).")

    def train_settings(self) -> dict:
        """Keyword arguments of ``scoder.training.trainer.train_sft`` / ``train_dpo``; the defaults
        add nothing, so a family without these settings trains (and fingerprints) as before."""
        out: dict = {}
        if self.dtype == "bfloat16":
            out["bf16"] = True
        elif self.dtype == "float16":
            out.update(bf16=False, fp16=True)
        elif self.dtype == "float32":
            out["bf16"] = False
        if self.gradient_checkpointing:
            out["gradient_checkpointing"] = True
        if self.attn_implementation != "auto":
            out["attn_implementation"] = self.attn_implementation
        return out

    def generator_spec(self, spec: dict) -> dict:
        """A generator config entry with the family's dtype (where the entry leaves it ``auto``)
        and, for transformers, its attention implementation."""
        spec = dict(spec)
        if spec.get("backend") not in ("transformers", "vllm"):
            return spec  # an HTTP API: nothing runs here
        if self.dtype != "auto" and spec.get("dtype", "auto") == "auto":
            spec["dtype"] = self.dtype
        if spec["backend"] == "transformers" and self.attn_implementation != "auto":
            spec.setdefault("attn_implementation", self.attn_implementation)
        return spec

    def model_settings(self) -> dict:
        """``dtype`` and ``attn_implementation`` for the stages that load a model themselves
        (gradient features, perplexity)."""
        return {"dtype": self.dtype, "attn_implementation": self.attn_implementation}


def attention_kwargs(attn_implementation: str | None) -> dict:
    """``from_pretrained`` keyword for an attention implementation (none for ``auto``)."""
    if attn_implementation in (None, "auto"):
        return {}
    if attn_implementation not in ATTENTION:
        raise ValueError(f"attn_implementation {attn_implementation!r} is not one of {', '.join(ATTENTION)}")
    return {"attn_implementation": attn_implementation}
