"""LLM generation behind one interface: ``make_generator(spec).generate(...)``.

``spec`` is a dict from the workflow config, e.g.::

    {"backend": "transformers", "model": "models/smollm2", "device": "auto",
     "batch_size": 8, "dtype": "auto"}
    {"backend": "vllm", "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
     "tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "max_model_len": 8192}
    {"backend": "openai", "model": "gpt-4o-2024-08-06", "base_url": "https://api.openai.com/v1",
     "api_key_env": "OPENAI_API_KEY", "max_concurrency": 8, "max_retries": 6,
     "timeout": 600, "cache_dir": "cache/openai",
     "price_per_1k_input": 0.0025, "price_per_1k_output": 0.01}

Backends are imported only when chosen, so torch is not loaded for the
OpenAI client and vLLM is never needed on CPU.
"""
from __future__ import annotations

from .base import Conversation, Generator, LLMConfigError, derive_seed, normalize_choices

__all__ = ["Conversation", "Generator", "LLMConfigError", "derive_seed", "make_generator",
           "normalize_choices"]

_OPTIONS = {
    "transformers": {"device", "batch_size", "dtype", "attn_implementation"},
    "vllm": {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype"},
    "openai": {"base_url", "api_key_env", "max_concurrency", "max_retries", "timeout",
               "cache_dir", "price_per_1k_input", "price_per_1k_output"},
}


def make_generator(spec: dict) -> Generator:
    """The generator a config entry describes (``backend``, ``model``, backend options)."""
    spec = dict(spec)
    backend = spec.pop("backend", None)
    if backend not in _OPTIONS:
        raise LLMConfigError(f"`backend` must be one of {', '.join(_OPTIONS)}; got {backend!r}")
    model = spec.pop("model", None)
    if not model:
        raise LLMConfigError(f"`model` is required for backend {backend!r}")
    unknown = set(spec) - _OPTIONS[backend]
    if unknown:
        # A misspelt option would otherwise be silently ignored.
        raise LLMConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for backend "
                             f"{backend!r}; allowed: {', '.join(sorted(_OPTIONS[backend]))}")
    if backend == "transformers":
        from .transformers_backend import TransformersGenerator
        return TransformersGenerator(str(model), **spec)
    if backend == "vllm":
        from .vllm_backend import VLLMGenerator
        return VLLMGenerator(str(model), **spec)
    from .openai_backend import OpenAIGenerator
    return OpenAIGenerator(str(model), **spec)
