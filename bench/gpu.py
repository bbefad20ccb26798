"""GPU figures: fine-tuning tokens/s, gradient features s/example, generation tokens/s and peak
GPU memory, at the embedded model's shape (SmolLM2-135M) and a ~1B Llama's, random weights.

Each figure comes from the function the workflow's rules run, with the paper runs' device
settings (config/config.yaml ``resources:``: bf16, sdpa, gradient checkpointing for training):

* fine-tuning: TRL's SFTTrainer as ``train_sft`` builds it (``build_sft_trainer``), full and LoRA
  r=128 on q/k/v/o, 8 sequences of up to 1,024 tokens per step; tokens/s counts real (unpadded)
  tokens over the steps after the first two;
* gradient features (``projected_gradients``): LoRA r=128 on q/k/v/o, k=8192, bf16 weights;
  dense fast (the config's batch_size 32, grad_batch_size 2), dense exact (the straightforward
  reference, a few examples) and structured (factor 64, 32 PCA directions, factors fit on 16
  examples first, the fit timed apart);
* generation (transformers backend): 32 chat prompts in one batch, 128 new tokens sampled.

Peak memory is ``torch.cuda.max_memory_allocated`` over each measurement.  On CPU with
``SCODER_GPU_REHEARSAL=cpu`` the same code runs on small shapes (a rehearsal: its figures say
nothing about a GPU).  Run (bench/gpu.sh does)::

    python bench/gpu.py [--out table.md] [--json figures.json] [--sizes embedded 1b]
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gpu"))
from gpu_support import build_model, chat_examples, chats, random_adapter, rehearsal, target_device  # noqa: E402

from scoder.device import DeviceSettings  # noqa: E402
from scoder.influence import projected_gradients  # noqa: E402
from scoder.influence.structured import FACTORS  # noqa: E402
from scoder.llm import make_generator  # noqa: E402

TRAIN = DeviceSettings(dtype="bfloat16", attn_implementation="sdpa", gradient_checkpointing=True)
GENERATE = DeviceSettings(dtype="bfloat16", attn_implementation="sdpa")
LORA = {"r": 128, "alpha": 512, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def _sizes(small: int, full: int) -> int:
    return small if rehearsal() else full


class _Peak:
    """Peak GPU memory (GiB) of what runs inside it; None on CPU."""

    def __enter__(self):
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        self.gib = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def training(model: str, work: Path, lora: dict | None) -> dict:
    """Tokens/s of SFT steps (after two warm-up steps) and peak memory."""
    from transformers import TrainerCallback

    from scoder.data import to_chat
    from scoder.training.trainer import build_sft_trainer

    steps = _sizes(3, 8)
    samples = chat_examples(8 * steps, lo=400, hi=_sizes(1200, 6000))

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.marks.append((time.perf_counter(), logs["num_tokens"]))

        def on_step_end(self, args, state, control, **kwargs):
            control.should_save = False   # no trainer state at the last step (1B: 12 GB written)
            return control

    clock = Clock()
    with _Peak() as peak:
        trainer = build_sft_trainer(model, [to_chat(s, "instruction") for s in samples], str(work / "sft"), epochs=1,
                                    learning_rate=1e-5, global_batch_size=8, per_device_batch_size=8,
                                    max_length=_sizes(256, 1024),
                                    lora=lora, callbacks=[clock], **TRAIN.train_settings())
        trainer.train()
    (t0, n0), (t1, n1) = clock.marks[1], clock.marks[-1]
    del trainer
    return {"tokens_per_s": round((n1 - n0) / (t1 - t0)), "steps_timed": len(clock.marks) - 2,
            "peak_gib": peak.gib}


def features(model: str, adapter: str, work: Path, device: str) -> dict:
    """s/example of the dense (fast, exact) and structured projections; the structured fit apart."""
    k = _sizes(1024, 8192)
    records = chats(chat_examples(_sizes(6, 64), lo=200, hi=_sizes(800, 2000)))
    common = dict(k=k, seed=0, batch_size=32, grad_batch_size=2, max_length=1024, device=device, dtype="auto",
                  attn_implementation="sdpa")
    out = {}
    for name, kwargs, subset in [
            ("dense", {"method": "fast"}, records),
            ("exact", {"method": "exact"}, records[:_sizes(1, 3)]),
            ("structured_fit", {"projection": "structured",
                                "structured": {"factor": 64, "pca": 32, "fit_examples": 16}}, records[:16]),
            ("structured", {"projection": "structured", "structured": {"factor": 64, "pca": 32, "fit_examples": 16},
                            "factors": str(work / "structured_fit" / FACTORS)}, records)]:
        profile: dict = {}
        with _Peak() as peak:
            projected_gradients(model, adapter, subset, str(work / name), **common, **kwargs, profile=profile)
        out[name] = {"s_per_example": round(profile["loop_s"] / profile["examples"], 4),
                     "examples": profile["examples"], "peak_gib": peak.gib, "lora_params": profile["dim"], "k": k}
        if name == "structured_fit":
            out[name]["fit_s"] = round(profile["fit_s"], 2)
    return out


def generation(model: str, device: str) -> dict:
    """New tokens/s of one batch of 32 chat prompts, 128 tokens sampled each."""
    prompts = [[{"role": "user", "content": s["problem"]}] for s in chat_examples(32)]
    with _Peak() as peak:
        generator = make_generator(GENERATE.generator_spec({"backend": "transformers", "model": model,
                                                            "device": device, "batch_size": 32}))
        generator.generate(prompts[:4], max_new_tokens=8, temperature=0.8, seed=1)   # warm-up
        before = generator.usage["completion_tokens"]
        t0 = time.perf_counter()
        generator.generate(prompts, max_new_tokens=_sizes(16, 128), temperature=0.8, top_p=0.95, seed=0)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        tokens = generator.usage["completion_tokens"] - before
    del generator
    return {"tokens_per_s": round(tokens / seconds), "new_tokens": tokens, "peak_gib": peak.gib}


def measure(size: str, device: str, work: Path, figures: dict) -> None:
    """Every figure of one model size into ``figures`` (what was measured stays if a later step fails)."""
    print(f"== {size}", flush=True)
    model = build_model(size, work / "model", device)
    figures["params"] = sum(math.prod(t) for t in _param_shapes(model))
    for name, lora in (("train_full", None), ("train_lora", LORA)):
        figures[name] = training(model, work / name, lora)
        print(name, figures[name], flush=True)
    adapter = random_adapter(model, work / "adapter", device)
    figures["features"] = features(model, adapter, work / "features", device)
    print("features", figures["features"], flush=True)
    figures["generate"] = generation(model, device)
    print("generate", figures["generate"], flush=True)


def _param_shapes(model: str):
    from safetensors import safe_open

    with safe_open(str(Path(model) / "model.safetensors"), "pt") as f:
        return [f.get_slice(key).get_shape() for key in f.keys()]


def table(results: dict, device: str) -> str:
    """The README table: one row per figure, one column per size."""
    sizes = list(results["sizes"])
    head = "| | " + " | ".join(f"{s} ({results['sizes'][s].get('params', math.nan) / 1e6:,.0f}M parameters)"
                               for s in sizes) + " |"
    rows = [head, "|---|" + "---|" * len(sizes)]

    def row(label, get):
        cells = []
        for s in sizes:
            try:
                cells.append(get(results["sizes"][s]))
            except (KeyError, TypeError):
                cells.append("failed" if "error" in results["sizes"][s] else "n/a")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    def mem(x):
        return f"{x['peak_gib']:.1f} GiB" if x.get("peak_gib") is not None else "n/a"

    row("full fine-tune, tokens/s (bf16, checkpointing)", lambda r: f"{r['train_full']['tokens_per_s']:,}")
    row("  peak GPU memory", lambda r: mem(r["train_full"]))
    row("LoRA r=128 fine-tune, tokens/s", lambda r: f"{r['train_lora']['tokens_per_s']:,}")
    row("  peak GPU memory", lambda r: mem(r["train_lora"]))
    row("gradient features, dense fast, s/example", lambda r: f"{r['features']['dense']['s_per_example']:.3f}")
    row("  peak GPU memory", lambda r: mem(r["features"]["dense"]))
    row("gradient features, dense exact, s/example", lambda r: f"{r['features']['exact']['s_per_example']:.2f}")
    row("gradient features, structured, s/example", lambda r: f"{r['features']['structured']['s_per_example']:.3f}")
    row("  its factors' fit on 16 examples, s", lambda r: f"{r['features']['structured_fit']['fit_s']:.1f}")
    row("  peak GPU memory", lambda r: mem(r["features"]["structured"]))
    row("generation, new tokens/s (batch 32)", lambda r: f"{r['generate']['tokens_per_s']:,}")
    row("  peak GPU memory", lambda r: mem(r["generate"]))
    first = results["sizes"][sizes[0]]
    k = first.get("features", {}).get("dense", {}).get("k", "?")
    note = (f"\n{results['device_name']}; torch {results['torch']}, transformers {results['transformers']}, "
            f"TRL {results['trl']}; k={k}, LoRA r=128 on q/k/v/o"
            + (" -- REHEARSAL on CPU, small shapes: not GPU figures" if device == "cpu" else ""))
    return "\n".join(rows) + "\n" + note + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["embedded", "1b"], choices=["embedded", "1b"])
    parser.add_argument("--out", help="write the markdown table here too")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args(argv)
    device = target_device()
    if device is None:
        raise SystemExit("bench/gpu.py: no CUDA device; set SCODER_GPU_REHEARSAL=cpu for a rehearsal on CPU")
    import transformers
    import trl

    results = {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
               "trl": trl.__version__, "sizes": {},
               "device_name": torch.cuda.get_device_name() if device == "cuda" else "CPU"}
    # a time limit (bench/gpu.sh's timeout sends SIGTERM) still leaves the figures measured so far
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/gpu.py: stopped by SIGTERM (time limit)"))
    try:
        with tempfile.TemporaryDirectory(prefix="scoder-gpu-bench-") as tmp:
            for size in args.sizes:
                figures = results["sizes"][size] = {}
                try:
                    measure(size, device, Path(tmp) / size, figures)
                except Exception as error:   # what was measured, and the other size's figures, still count
                    import traceback
                    traceback.print_exc()
                    figures["error"] = f"{type(error).__name__}: {error}"
    finally:
        text = table(results, device)
        print(text)
        if args.out:
            Path(args.out).write_text(text)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    if any("error" in r for r in results["sizes"].values()):
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
