"""Benchmark projected LoRA gradients on SmolLM2-135M-Instruct (the scale of the tiny default).

LoRA r=128 on q/k/v/o (14.7M parameters, a random adapter with nonzero B), projected to
k=8192, 64 chat examples of 100-300 tokens built from Python stdlib functions.  Measures the
fast method end to end (seconds per example, gradients vs projection, peak memory of its own
process) and the straightforward exact method on a few examples, its projection timed on a
few blocks and extrapolated to all of them; then the per-example cosine between the fast
features and exact ones (exact gradients, float32 projection over every block)::

    python bench/influence.py [--model /tmp/smol] [--out influence_bench.json]
"""
from __future__ import annotations

import argparse
import ast
import json
import multiprocessing as mp
import os
import resource
import shutil
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scoder.influence import load_features, projected_gradients
from scoder.influence.gradients import (PerExampleGradients, collate, encode_chat, exact_gradient,
                                        load_reference_model, load_tokenizer, lora_parameters)
from scoder.influence.projection import RademacherProjector

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def stdlib_examples(tok, n: int, lo: int = 100, hi: int = 300) -> list[dict]:
    """Chat examples "write function X: <docstring line>" -> its stdlib source, lo..hi tokens."""
    out = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            if not doc:
                continue
            record = {"id": f"{path.stem}.{node.name}", "messages": [
                {"role": "user", "content": f"Write a Python function `{node.name}`: {doc.splitlines()[0]}"},
                {"role": "assistant", "content": ast.get_source_segment(src, node)}]}
            if lo <= len(encode_chat(tok, record, 4096)["input_ids"]) <= hi:
                out.append(record)
                if len(out) == n:
                    return out
    raise RuntimeError(f"only {len(out)} stdlib functions of {lo}-{hi} tokens")


def make_adapter(model: str, out_dir: str, r: int, alpha: int, seed: int = 0) -> None:
    """A random LoRA: PEFT's init for A, small Gaussian B (so gradients w.r.t. A are nonzero)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
                                LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=1e-3)
    peft_model.save_pretrained(out_dir)


def _fast_worker(kwargs: dict, result_path: str, threads: int) -> None:
    torch.set_num_threads(threads)
    profile: dict = {}
    t0 = time.perf_counter()
    projected_gradients(**kwargs, profile=profile)
    profile["wall_s"] = time.perf_counter() - t0
    Path(result_path).write_text(json.dumps(profile))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/smol", help="SmolLM2 HF folder (converted if missing)")
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--k", type=int, default=8192)
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="examples per projection batch")
    ap.add_argument("--grad-batch-size", type=int, default=8, help="examples per forward/backward")
    ap.add_argument("--exact-examples", type=int, default=3)
    ap.add_argument("--exact-blocks", type=int, default=8, help="projection blocks timed for the exact method")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=None, help="write the results as JSON here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="influence_bench_"))
    model = args.model
    if not (Path(model) / "config.json").exists():
        from scoder.models import convert_smollm2
        model = str(convert_smollm2(work / "smol"))
    adapter = str(work / "adapter")
    make_adapter(model, adapter, args.rank, 4 * args.rank)
    tok = load_tokenizer(model, adapter)
    records = stdlib_examples(tok, args.examples)
    lengths = [len(encode_chat(tok, r, 4096)["input_ids"]) for r in records]
    result = {"model": model, "examples": len(records), "tokens": {"min": min(lengths), "max": max(lengths),
              "mean": float(np.mean(lengths))}, "k": args.k, "lora_r": args.rank,
              "torch_threads": torch.get_num_threads(), "load_average_start": os.getloadavg()[0]}

    # fast method, in its own process so its peak memory is its own
    fast_dir, prof_path = work / "fast", work / "fast_profile.json"
    kwargs = dict(model=model, adapter=adapter, records=records, out_dir=str(fast_dir), k=args.k,
                  batch_size=args.batch_size, grad_batch_size=args.grad_batch_size, max_length=4096,
                  shard_size=max(args.examples, args.batch_size), method="fast", device="cpu")
    proc = mp.get_context("spawn").Process(target=_fast_worker, args=(kwargs, str(prof_path), torch.get_num_threads()))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"fast run failed with exit code {proc.exitcode}")
    prof = json.loads(prof_path.read_text())
    n = prof["examples"]
    result["lora_params"] = prof["dim"]
    result["fast"] = {
        "batch_size": args.batch_size, "grad_batch_size": args.grad_batch_size,
        "s_per_example": prof["wall_s"] / n,
        "gradient_s_per_example": prof["gradient_s"] / n,
        "projection_generate_s_per_example": prof["generate_s"] / n,
        "projection_matmul_s_per_example": prof["matmul_s"] / n,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
    }
    fast = load_features(str(fast_dir))

    # exact method on a few examples (short, middle, long)
    ref = load_reference_model(model, adapter, "cpu", torch.float32)
    params = lora_parameters(ref)
    by_length = np.argsort(lengths, kind="stable")
    picks = [int(by_length[round(i * (len(records) - 1) / max(args.exact_examples - 1, 1))])
             for i in range(args.exact_examples)]
    encoded = [encode_chat(tok, records[i], 4096) for i in picks]
    grads, grad_times = [], []
    for e in encoded:
        t0 = time.perf_counter()
        grads.append(exact_gradient(ref, params, collate([e], tok.pad_token_id, "cpu")))
        grad_times.append(time.perf_counter() - t0)
    grads = torch.stack(grads)
    projector = RademacherProjector(grads.shape[1], args.k, 0, "cpu", torch.float32)
    t0 = time.perf_counter()
    projector.project(grads[:1], blocks=range(args.exact_blocks))
    per_block = (time.perf_counter() - t0) / args.exact_blocks
    exact_proj = per_block * projector.num_blocks
    result["exact"] = {
        "gradient_s_per_example": float(np.mean(grad_times)), "timed_examples": len(picks),
        "projection_s_per_example": exact_proj, "projection_timed_blocks": args.exact_blocks,
        "projection_blocks": projector.num_blocks, "projection_generate_s_per_block": projector.timings[
            "generate_s"] / args.exact_blocks,
        "s_per_example": float(np.mean(grad_times)) + exact_proj, "extrapolated": True,
    }
    result["speedup_exact_over_fast"] = result["exact"]["s_per_example"] / result["fast"]["s_per_example"]

    # agreement: per-example gradients, then features (exact = full float32 projection of exact gradients)
    fast_grads = PerExampleGradients(ref, params)(collate(encoded, tok.pad_token_id, "cpu"))
    result["min_cosine_gradients"] = float(torch.nn.functional.cosine_similarity(
        fast_grads.double(), grads.double()).min())
    del ref, fast_grads
    exact = RademacherProjector(grads.shape[1], args.k, 0, "cpu", torch.float32).project(grads).numpy()
    f = fast[picks]
    f, exact = f.astype(np.float64), exact.astype(np.float64)
    cos = (f * exact).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(exact, axis=1)
    result["min_cosine_features_fast_vs_exact"] = float(cos.min())
    result["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # adapter and features: ~100 MB
    return result


if __name__ == "__main__":
    main()
