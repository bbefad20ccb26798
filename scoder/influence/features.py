"""Projected-gradient features of chat examples, streamed to disk in resumable shards.

``projected_gradients`` writes ``out_dir/shard_00000.npy`` ... (float32, rows in record
order, ``shard_size`` rows each), a ``shard_00000.jsonl`` index per shard (record id and
token counts), and ``manifest.json`` (the settings fingerprint, the projection's definition
and, once finished, ``complete: true``).  A shard whose ``.npy`` exists is done: a rerun with
the same settings skips it, so an interrupted stage resumes where it stopped.  The method and
batch sizes are not part of the fingerprint: they give the same features up to rounding.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from scoder.influence.gradients import (PerExampleGradients, adam_precondition, collate, encode_chat,
                                        exact_gradient, load_adam_state, load_reference_model,
                                        load_tokenizer, lora_parameters)
from scoder.influence.projection import BLOCK_ROWS, RademacherProjector
from scoder.io import read_json, write_json, write_jsonl

MANIFEST = "manifest.json"


def _digest_files(folder: str, names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in names:
        path = Path(folder) / name
        if path.exists():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _digest_records(records: list[dict]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.get("id"), r["messages"]], sort_keys=True).encode())
    return h.hexdigest()[:16]


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)  # a shard file that exists is complete


def projected_gradients(model: str, adapter: str, records: list[dict], out_dir: str, *, k: int,
                        seed: int = 0, batch_size: int = 8, max_length: int = 1024, method: str = "fast",
                        shard_size: int = 256, device: str = "auto", dtype: str = "auto",
                        grad_batch_size: int | None = None, optimizer_state: str | None = None,
                        profile: dict | None = None) -> str:
    """Project each chat example's response-loss gradient w.r.t. the LoRA weights of ``model`` +
    ``adapter`` (the reference model) to ``k`` dims with a seeded Rademacher matrix; returns out_dir.

    ``method="exact"``: one backward per example, float32 projection (the reference);
    ``"fast"``: per-example gradients from one forward/backward per ``grad_batch_size`` examples
    (default: the whole batch), held in bfloat16, and a bfloat16 projection that generates each
    block of the matrix once per ``batch_size`` examples (memory: batch_size x #LoRA params x 2 bytes
    plus the activations of grad_batch_size examples).  ``dtype`` is the model's ("auto": float32
    on CPU, bfloat16 on CUDA).  ``optimizer_state`` (a Trainer ``optimizer.pt`` of the reference
    training) turns on LESS's Adam-preconditioned gradients.  ``profile``, if given, receives timings.
    """
    if method not in ("fast", "exact"):
        raise ValueError(f"method must be 'fast' or 'exact', not {method!r}")
    device = resolve_device(device)
    torch_dtype = getattr(torch, dtype) if dtype != "auto" else (
        torch.bfloat16 if device.startswith("cuda") else torch.float32)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {
        "model": str(model), "adapter_digest": _digest_files(adapter, ("adapter_model.safetensors",
                                                                      "adapter_model.bin", "adapter_config.json")),
        "records": _digest_records(records), "n": len(records), "k": k, "seed": seed,
        "max_length": max_length, "shard_size": shard_size, "model_dtype": str(torch_dtype),
        "projection": {"kind": "rademacher", "block_rows": BLOCK_ROWS, "rng_device": torch.device(device).type},
        "optimizer_state": _digest_files(os.path.dirname(optimizer_state), (os.path.basename(optimizer_state),))
        if optimizer_state else None,
    }
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        old = read_json(manifest_path)
        if old["fingerprint"] != fingerprint:
            raise ValueError(f"{out_dir} holds features made with other settings; remove it to recompute")
        if old.get("complete"):
            return str(out)
    write_json(manifest_path, {"fingerprint": fingerprint, "complete": False})

    shards = [(i, s, min(s + shard_size, len(records))) for i, s in enumerate(range(0, len(records), shard_size))]
    todo = [sh for sh in shards if not (out / f"shard_{sh[0]:05d}.npy").exists()]
    timings = {"gradient_s": 0.0, "generate_s": 0.0, "matmul_s": 0.0, "examples": 0}
    if todo:
        tok = load_tokenizer(model, adapter)
        ref = load_reference_model(model, adapter, device, torch_dtype)
        params = lora_parameters(ref)
        dim = sum(p.numel() for _, p in params)
        adam = load_adam_state(optimizer_state, params, device) if optimizer_state else None
        projector = RademacherProjector(dim, k, seed, device,
                                        torch.float32 if method == "exact" else torch.bfloat16,
                                        profile=profile is not None)
        per_example = PerExampleGradients(ref, params) if method == "fast" else None
        micro = min(grad_batch_size or batch_size, batch_size) if method == "fast" else 1
        for index, start, stop in todo:
            encoded = [encode_chat(tok, r, max_length) for r in records[start:stop]]
            features = np.zeros((stop - start, k), dtype=np.float32)
            # batches of similar length waste less compute on padding
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
            step = batch_size if method == "fast" else 1
            for b in range(0, len(order), step):
                rows = order[b:b + step]
                t0 = time.perf_counter()
                grads = torch.empty(len(rows), dim, dtype=projector.dtype, device=device)
                for m in range(0, len(rows), micro):
                    batch = collate([encoded[i] for i in rows[m:m + micro]], tok.pad_token_id, device)
                    g = per_example(batch) if per_example else exact_gradient(ref, params, batch)[None]
                    grads[m:m + micro] = adam_precondition(g, *adam) if adam else g
                    del g, batch
                if device.startswith("cuda") and profile is not None:
                    torch.cuda.synchronize()
                timings["gradient_s"] += time.perf_counter() - t0
                features[rows] = projector.project(grads).cpu().numpy()
                timings["examples"] += len(rows)
                del grads
            write_jsonl(out / f"shard_{index:05d}.jsonl",
                        [{"row": start + i, "id": str(records[start + i].get("id", start + i)),
                          "n_tokens": len(e["input_ids"]), "n_response_tokens": e["n_response_tokens"]}
                         for i, e in enumerate(encoded)])
            _save_npy(out / f"shard_{index:05d}.npy", features)
        timings.update(projector.timings)
        timings["dim"] = dim
    if profile is not None:
        profile.update(timings)
    write_json(manifest_path, {"fingerprint": fingerprint, "complete": True, "n": len(records), "k": k,
                               "shards": [f"shard_{i:05d}.npy" for i, _, _ in shards]})
    return str(out)


def load_manifest(out_dir: str) -> dict:
    """The manifest of a finished features folder (settings fingerprint and shard list)."""
    manifest = read_json(Path(out_dir) / MANIFEST)
    if not manifest.get("complete"):
        raise ValueError(f"{out_dir}: projected gradients are not complete (rerun projected_gradients)")
    return manifest


def load_features(out_dir: str) -> np.ndarray:
    """All projected gradients of a finished folder as an (n, k) float32 array, rows in record order."""
    manifest = load_manifest(out_dir)
    if not manifest["shards"]:
        return np.zeros((0, manifest["k"]), dtype=np.float32)
    return np.concatenate([np.load(Path(out_dir) / name) for name in manifest["shards"]])
