"""Benchmark projected LoRA gradients on SmolLM2-135M-Instruct, every method in one run.

LoRA r=128 on q/k/v/o (14.7M parameters, a random adapter with nonzero B), k=8192, 64 chat
examples of 100-300 tokens built from Python stdlib functions.  Each timed method runs in its
own process (so its peak memory is its own), one after the other:

* a plain forward+backward of the same batches (the floor every method pays);
* the project's fast dense method (per-example gradients of ``--grad-batch-size`` examples per
  backward, projection batches of ``--batch-size``): s/example, gradients vs projection split;
* the structured projection (Kronecker sketches, then the dense projection of the sketches):
  its factors fit on D_p once (timed separately), then s/example for all examples and its
  ratio to the plain forward+backward;
* the straightforward exact method (batch 1, one backward per example, full gradient, float32
  projection regenerating P per example): timed on ``--exact-examples`` examples and
  ``--exact-blocks`` projection blocks, EXTRAPOLATED to all blocks (it would take minutes per
  example); its features on those examples give the min per-example cosine to the fast ones.

Influence agreement: the first of every 4 examples play D_p, the other 3/4 the candidates;
Spearman correlations of V(d) between the structured and the dense (exact) features, and of
each against V(d) from the full, unprojected gradients.  The exact features are themselves a
random projection: the Spearman between the exact features of two projection seeds is printed
as the ceiling of any other projection's agreement with them.  ``--structured-seeds N`` repeats
the structured projection with N seeds (its agreement varies with the seed).  The machine is
shared: figures vary with its load (printed).  Run::

    nice -n 10 python bench/influence.py [--model work/models/smollm2-135m-instruct] [--out r.json]
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
from scipy.stats import spearmanr

from scoder.influence import influence_values, load_features, projected_gradients
from scoder.influence.gradients import (PerExampleGradients, collate, encode_chat, exact_gradient,
                                        load_reference_model, load_tokenizer, lora_parameters, response_losses)
from scoder.influence.projection import RademacherProjector
from scoder.influence.structured import DEFAULTS, FACTORS

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
DEFAULT_MODEL = "work/models/smollm2-135m-instruct"


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


def length_sorted_batches(tok, records, size):
    encoded = [encode_chat(tok, r, 4096) for r in records]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    return [collate([encoded[i] for i in order[b:b + size]], tok.pad_token_id, "cpu")
            for b in range(0, len(order), size)]


def _plain_worker(model, adapter, records, grad_batch_size, threads, result_path):
    """A plain forward+backward (LoRA weight gradients, as in training) of the same batches."""
    torch.set_num_threads(threads)
    tok = load_tokenizer(model, adapter)
    ref = load_reference_model(model, adapter, "cpu", torch.float32)
    batches = length_sorted_batches(tok, records, grad_batch_size)
    t0 = time.perf_counter()
    for batch in batches:
        ref.zero_grad(set_to_none=True)
        response_losses(ref, batch).sum().backward()
    loop = time.perf_counter() - t0
    Path(result_path).write_text(json.dumps({"loop_s": loop, "peak_rss_gib": _peak_rss_gib()}))


def _features_worker(kwargs, threads, result_path):
    torch.set_num_threads(threads)
    profile: dict = {}
    t0 = time.perf_counter()
    projected_gradients(**kwargs, profile=profile)
    profile.update(wall_s=time.perf_counter() - t0, peak_rss_gib=_peak_rss_gib())
    Path(result_path).write_text(json.dumps(profile))


def _structured_worker(kwargs, dp_rows, threads, result_path):
    """Fit the Kronecker factors on D_p (its gradients job), then project every example with them."""
    torch.set_num_threads(threads)
    out = Path(kwargs["out_dir"])
    fit: dict = {}
    t0 = time.perf_counter()
    projected_gradients(**{**kwargs, "records": [kwargs["records"][i] for i in dp_rows],
                           "out_dir": str(out / "dp")}, profile=fit)
    dp_s = time.perf_counter() - t0
    profile: dict = {}
    t0 = time.perf_counter()
    projected_gradients(**kwargs, factors=str(out / "dp" / FACTORS), profile=profile)
    profile.update(wall_s=time.perf_counter() - t0, fit_s=fit["fit_s"], dp_job_s=dp_s,
                   peak_rss_gib=_peak_rss_gib())
    Path(result_path).write_text(json.dumps(profile))


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def in_process(target, args, work: Path) -> dict:
    """Run ``target(*args, result_path)`` in a fresh process and return the JSON it wrote."""
    result = work / f"{target.__name__}_{time.monotonic_ns()}.json"
    proc = mp.get_context("spawn").Process(target=target, args=(*args, str(result)))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return json.loads(result.read_text())


def true_influence(model, adapter, records, dp_rows, cand_rows, grad_batch_size) -> np.ndarray:
    """V(d) of the candidates from the full, unprojected gradients (held in bfloat16)."""
    tok = load_tokenizer(model, adapter)
    ref = load_reference_model(model, adapter, "cpu", torch.float32)
    params = lora_parameters(ref)
    per_example = PerExampleGradients(ref, params)
    encoded = [encode_chat(tok, r, 4096) for r in records]
    grads = torch.empty(len(records), per_example.dim, dtype=torch.bfloat16)
    for b in range(0, len(records), grad_batch_size):
        rows = list(range(b, min(b + grad_batch_size, len(records))))
        per_example(collate([encoded[i] for i in rows], tok.pad_token_id, "cpu"), out=grads[rows[0]:rows[-1] + 1])
    target = grads[dp_rows].float().mean(0)
    values = [float(torch.nn.functional.cosine_similarity(grads[i].float(), target, dim=0)) for i in cand_rows]
    return np.array(values)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="SmolLM2 HF folder (converted if missing)")
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--k", type=int, default=8192)
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="examples per projection batch")
    ap.add_argument("--grad-batch-size", type=int, default=8, help="examples per forward/backward")
    ap.add_argument("--exact-examples", type=int, default=3)
    ap.add_argument("--exact-blocks", type=int, default=8, help="projection blocks timed for the exact method")
    ap.add_argument("--factor", type=int, default=DEFAULTS["factor"], help="structured: factor size per side")
    ap.add_argument("--pca", type=int, default=DEFAULTS["pca"], help="structured: PCA directions per factor")
    ap.add_argument("--structured-seeds", type=int, default=1, help="structured projection repeated with N seeds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default=None, help="write the results as JSON here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

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
              "mean": float(np.mean(lengths))}, "k": args.k, "lora_r": args.rank, "torch_threads": threads,
              "load_average_start": os.getloadavg()[0]}
    n = len(records)

    plain = in_process(_plain_worker, (model, adapter, records, args.grad_batch_size, threads), work)
    result["plain_forward_backward"] = {"s_per_example": plain["loop_s"] / n, "grad_batch_size": args.grad_batch_size,
                                        "peak_rss_gib": plain["peak_rss_gib"]}

    dp_rows = list(range(0, n, 4))  # D_p = every 4th example, candidates = the rest
    cand_rows = [i for i in range(n) if i % 4]
    common = dict(model=model, adapter=adapter, records=records, k=args.k, grad_batch_size=args.grad_batch_size,
                  batch_size=args.batch_size, max_length=4096, shard_size=max(n, args.batch_size), device="cpu")
    settings = {"factor": args.factor, "pca": args.pca, "fit_examples": len(dp_rows)}
    structured = []
    for seed in range(args.structured_seeds):
        folder = work / f"structured{seed}"
        st = in_process(_structured_worker, ({**common, "out_dir": str(folder), "projection": "structured",
                                              "structured": settings, "seed": seed}, dp_rows, threads), work)
        structured.append(load_features(str(folder)))
        if seed == 0:
            result["structured"] = {
                **settings, "s_per_example": st["wall_s"] / n, "loop_s_per_example": st["loop_s"] / n,
                "sketch_s_per_example": st["gradient_s"] / n,
                "projection_s_per_example": (st["generate_s"] + st["matmul_s"]) / n,
                "sketch_dim": st["projected_dim"],
                "ratio_to_plain_forward_backward": (st["wall_s"] / n) / result["plain_forward_backward"]["s_per_example"],
                "fit_factors_s": st["fit_s"], "fit_examples": len(dp_rows),
                "peak_rss_gib": st["peak_rss_gib"],
                "note": "wall time includes loading the model and writing features; the factors are fit once, "
                        "in D_p's gradients job (fit_factors_s, not in s_per_example)"}

    fa = in_process(_features_worker, ({**common, "out_dir": str(work / "fast"), "projection": "dense"}, threads),
                    work)
    fast = load_features(str(work / "fast"))
    in_process(_features_worker, ({**common, "out_dir": str(work / "fast_seed1"), "projection": "dense", "seed": 1},
                                  threads), work)
    fast_seed1 = load_features(str(work / "fast_seed1"))
    result["lora_params"] = fa["dim"]
    result["fast"] = {
        "batch_size": args.batch_size, "grad_batch_size": args.grad_batch_size,
        "s_per_example": fa["wall_s"] / n,
        "gradient_s_per_example": fa["gradient_s"] / n,
        "projection_generate_s_per_example": fa["generate_s"] / n,
        "projection_matmul_s_per_example": fa["matmul_s"] / n,
        "peak_rss_gib": fa["peak_rss_gib"],
    }

    # the straightforward exact method on a few examples (short, middle, long)
    ref = load_reference_model(model, adapter, "cpu", torch.float32)
    params = lora_parameters(ref)
    by_length = np.argsort(lengths, kind="stable")
    picks = [int(by_length[round(i * (n - 1) / max(args.exact_examples - 1, 1))]) for i in range(args.exact_examples)]
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
        "projection_blocks": projector.num_blocks,
        "projection_generate_s_per_block": projector.timings["generate_s"] / args.exact_blocks,
        "s_per_example": float(np.mean(grad_times)) + exact_proj,
        "extrapolated": f"projection timed on {args.exact_blocks} of {projector.num_blocks} blocks, "
                        f"gradients on {len(picks)} examples",
    }
    result["speedup_fast_over_exact"] = result["exact"]["s_per_example"] / result["fast"]["s_per_example"]

    # agreement: per-example gradients, then features (exact = full float32 projection of exact gradients)
    fast_grads = PerExampleGradients(ref, params)(collate(encoded, tok.pad_token_id, "cpu"))
    result["min_cosine_gradients_fast_vs_exact"] = float(torch.nn.functional.cosine_similarity(
        fast_grads.double(), grads.double()).min())
    del ref, fast_grads
    exact = RademacherProjector(grads.shape[1], args.k, 0, "cpu", torch.float32).project(grads).numpy()
    f, e = fast[picks].astype(np.float64), exact.astype(np.float64)
    cos = (f * e).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(e, axis=1)
    result["min_cosine_features_fast_vs_exact"] = float(cos.min())
    del grads

    # influence rankings
    def values(features):
        return influence_values(features[cand_rows], features[dp_rows])

    def rho(a, b):
        return float(spearmanr(a, b).statistic)

    v_dense, v_dense1 = values(fast), values(fast_seed1)
    v_structured = [values(f) for f in structured]
    v_true = true_influence(model, adapter, records, dp_rows, cand_rows, args.grad_batch_size)
    vs_exact = [rho(v, v_dense) for v in v_structured]
    vs_true = [rho(v, v_true) for v in v_structured]
    result["influence"] = {
        "candidates": len(cand_rows), "d_p": len(dp_rows),
        "note": "exact = the fast dense features (equal to the exact ones, see min_cosine_features_fast_vs_exact); "
                "structured: mean over its seeds (each listed)",
        "v_true_range": [float(v_true.min()), float(v_true.max())],
        "spearman_structured_vs_exact": float(np.mean(vs_exact)), "spearman_structured_vs_exact_each": vs_exact,
        "spearman_structured_vs_full_gradient": float(np.mean(vs_true)),
        "spearman_structured_vs_full_gradient_each": vs_true,
        "spearman_exact_vs_full_gradient": rho(v_dense, v_true),
        "spearman_exact_seed1_vs_full_gradient": rho(v_dense1, v_true),
        "spearman_exact_vs_exact_seed1": rho(v_dense, v_dense1),
    }
    result["peak_rss_gib_main_process"] = _peak_rss_gib()
    result["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # adapter and features: ~100 MB
    return result


if __name__ == "__main__":
    main()
