"""Projected-gradient features of chat examples, streamed to disk in resumable shards.

``projected_gradients`` writes ``out_dir/shard_00000.npy`` ... (float32, rows in record
order, ``shard_size`` rows each), a ``shard_00000.jsonl`` index per shard (record id and
token counts), and ``manifest.json`` (the settings fingerprint, the projection's definition
and, once finished, ``complete: true``).  A shard whose ``.npy`` exists is done: a rerun with
the same settings skips it, so an interrupted stage resumes where it stopped.  The method,
batch sizes and device index are not part of the fingerprint: they give the same features up
to rounding (the projection, dense or structured, and the generator's device type are).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from tqdm.auto import tqdm

from scoder.influence.gradients import (PerExampleGradients, adam_precondition, collate, encode_chat,
                                        exact_gradient, load_adam_state, load_reference_model,
                                        load_tokenizer, lora_parameters)
from scoder.influence.projection import BLOCK_ROWS, RademacherProjector
from scoder.influence.structured import (FACTOR_BLOCKS, FACTORS, StructuredProjection, fit_factors, load_factors,
                                         save_factors, settings_of)
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


def _file_digest(path: str | os.PathLike) -> str:
    return _digest_files(os.path.dirname(path), (os.path.basename(path),))


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


def model_dtype(dtype: str, device: str) -> torch.dtype:
    """The reference model's dtype: "auto" is bfloat16 on CUDA and float32 on CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)  # a shard file that exists is complete


def _fingerprint(model, adapter, records, *, k, seed, max_length, shard_size, torch_dtype, device,
                 projection, structured, factors, optimizer_state) -> dict:
    """What determines the features (not the method or batch sizes: they agree up to rounding)."""
    kind = ({"kind": "rademacher", "block_rows": BLOCK_ROWS} if projection == "dense"
            else {"kind": "kronecker+rademacher", **structured, "factor_blocks": FACTOR_BLOCKS,
                  "block_rows": BLOCK_ROWS, "version": 2,  # 1: random 32x32 factors scaled by 1/sqrt(ab)
                  # factors fit on another set (D_p's, for candidates) or on these records
                  "factors": _file_digest(factors) if factors else "fit on these records"})
    kind["streams"] = 2  # block_seed's scheme (1: seeds above 2**32, which torch's CPU generator truncated)
    return {
        "model": str(model), "adapter_digest": _digest_files(adapter, ("adapter_model.safetensors",
                                                                      "adapter_model.bin", "adapter_config.json")),
        "records": _digest_records(records), "n": len(records), "k": k, "seed": seed,
        "max_length": max_length, "shard_size": shard_size, "model_dtype": str(torch_dtype),
        "projection": {**kind, "rng_device": torch.device(device).type},
        "optimizer_state": _file_digest(optimizer_state) if optimizer_state else None,
    }


class _Featurizer:
    """Features of one batch of encoded examples by the chosen method and projection."""

    def __init__(self, ref, params, *, k, seed, method, factors, device, adam, profile):
        self.device, self.adam = device, adam
        self.timings = {"gradient_s": 0.0, "generate_s": 0.0, "matmul_s": 0.0}
        self.profile = profile
        self.ref, self.params = ref, params
        # structured (``factors`` given): the dense projection applies to the per-example Kronecker
        # sketches (stage 2) instead of the full per-example gradients
        self.structured = StructuredProjection(ref, params, factors) if factors is not None else None
        self.per_example = self.structured or (PerExampleGradients(ref, params) if method == "fast" else None)
        self.grad_dim = self.structured.dim if self.structured else sum(p.numel() for _, p in params)
        self.projector = RademacherProjector(self.grad_dim, k, seed, device,
                                             torch.float32 if method == "exact" else torch.bfloat16,
                                             profile=profile)

    def _sync(self):
        if self.profile and self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def __call__(self, batches: list[dict]) -> torch.Tensor:
        """(n, dim) float32 features of the examples of ``batches`` (collated), in order."""
        t0 = time.perf_counter()
        n = sum(len(batch["input_ids"]) for batch in batches)
        # the projection batch: P's blocks are generated once for all of its rows
        grads = torch.empty(n, self.grad_dim, dtype=self.projector.dtype, device=self.device)
        row = 0
        for batch in batches:
            b = len(batch["input_ids"])
            if self.structured is not None:
                self.structured(batch, out=grads[row:row + b])
            elif self.per_example is not None:
                self.per_example(batch, out=grads[row:row + b], adam=self.adam)
            else:
                g = exact_gradient(self.ref, self.params, batch)[None]
                grads[row:row + b] = adam_precondition(g, *self.adam) if self.adam else g
            row += b
        self._sync()
        self.timings["gradient_s"] += time.perf_counter() - t0
        return self.projector.project(grads)


def projected_gradients(model: str, adapter: str, records: list[dict], out_dir: str, *, k: int,
                        seed: int = 0, projection: str = "dense", structured: dict | None = None,
                        factors: str | None = None, batch_size: int = 32,
                        grad_batch_size: int | None = None, max_length: int = 1024, method: str = "fast",
                        shard_size: int = 256, device: str = "auto", dtype: str = "auto",
                        attn_implementation: str | None = None, optimizer_state: str | None = None,
                        profile: dict | None = None) -> str:
    """Project each chat example's response-loss gradient w.r.t. the LoRA weights of ``model`` +
    ``adapter`` (the reference model) to ``k`` dims with a seeded Rademacher matrix; returns out_dir.

    ``projection="dense"`` (the paper's): ``method="exact"`` is the straightforward reference (one
    backward per example, float32 projection regenerating P per example); ``"fast"`` gets the
    per-example gradients of ``grad_batch_size`` examples (default: ``batch_size``) from one
    forward/backward, holds ``batch_size`` of them in bfloat16 and projects them together, so each
    block of P is generated once per ``batch_size`` examples (memory: batch_size x #LoRA params x 2
    bytes plus the activations of grad_batch_size examples).  ``projection="structured"``: a
    different projection (``scoder.influence.structured``, settings ``structured``: factor, pca,
    fit_examples): per-example Kronecker sketches of each LoRA matrix's gradient from one
    forward/backward per ``grad_batch_size`` examples, never forming the gradients, then the dense
    projection of ``batch_size`` sketches at a time.  Its factors come from ``factors`` (a
    ``kronecker_factors.safetensors``: D_p's, for candidates) or are fit on ``records`` and written
    to ``out_dir`` (D_p).
    ``dtype`` is the model's ("auto": float32 on CPU, bfloat16 on CUDA), ``attn_implementation``
    transformers' attention (None: the model's default; not in the fingerprint: it changes
    rounding only).  ``optimizer_state`` (the
    reference training's Adam moments, ``load_adam_state``) turns on LESS's Adam-preconditioned
    gradients.  ``profile``, if given, receives timings.
    """
    if method not in ("fast", "exact"):
        raise ValueError(f"method must be 'fast' or 'exact', not {method!r}")
    if projection not in ("dense", "structured"):
        raise ValueError(f"influence.projection must be 'dense' or 'structured', not {projection!r}")
    if projection == "structured" and (method == "exact" or optimizer_state):
        raise ValueError("the structured projection never forms the full gradient: it has no exact method and "
                         "no Adam preconditioning (use influence.projection: dense)")
    structured = settings_of(structured) if projection == "structured" else None
    if factors and not Path(factors).exists():
        raise FileNotFoundError(f"{factors}: no Kronecker factors there (they come from D_p's gradients job)")
    device = resolve_device(device)
    torch_dtype = model_dtype(dtype, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(model, adapter, records, k=k, seed=seed, max_length=max_length,
                               shard_size=shard_size, torch_dtype=torch_dtype, device=device,
                               projection=projection, structured=structured, factors=factors,
                               optimizer_state=optimizer_state)
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
    timings: dict = {"examples": 0}
    if todo:
        tok = load_tokenizer(model, adapter)
        ref = load_reference_model(model, adapter, device, torch_dtype, attn_implementation)
        params = lora_parameters(ref)
        adam = load_adam_state(optimizer_state, params, device) if optimizer_state else None
        micro = 1 if method == "exact" else max(1, min(grad_batch_size or batch_size, batch_size))
        step = 1 if method == "exact" else batch_size
        pairs = None
        if structured is not None:
            t0 = time.perf_counter()
            pairs = _kronecker_factors(ref, params, tok, records, out, structured, seed, factors,
                                       max_length=max_length, micro=micro, device=device)
            timings["fit_s"] = time.perf_counter() - t0
        featurize = _Featurizer(ref, params, k=k, seed=seed, method=method, factors=pairs, device=device,
                                adam=adam, profile=profile is not None)
        loop_start = time.perf_counter()
        progress = tqdm(total=sum(stop - start for _, start, stop in todo), desc="projected gradients",
                        unit="ex", mininterval=10)
        for index, start, stop in todo:
            encoded = [encode_chat(tok, r, max_length) for r in records[start:stop]]
            features = np.zeros((stop - start, k), dtype=np.float32)
            # batches of similar length waste less compute on padding
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
            for b in range(0, len(order), step):
                rows = order[b:b + step]
                batches = [collate([encoded[i] for i in rows[m:m + micro]], tok.pad_token_id, device)
                           for m in range(0, len(rows), micro)]
                features[rows] = featurize(batches).cpu().numpy()
                timings["examples"] += len(rows)
                progress.update(len(rows))
            write_jsonl(out / f"shard_{index:05d}.jsonl",
                        [{"row": start + i, "id": str(records[start + i].get("id", start + i)),
                          "n_tokens": len(e["input_ids"]), "n_response_tokens": e["n_response_tokens"]}
                         for i, e in enumerate(encoded)])
            _save_npy(out / f"shard_{index:05d}.npy", features)
        progress.close()
        timings["loop_s"] = time.perf_counter() - loop_start
        timings.update(featurize.timings)
        timings.update(featurize.projector.timings)
        timings["dim"] = sum(p.numel() for _, p in params)
        timings["projected_dim"] = featurize.grad_dim  # what stage 2 projects: the gradient or the sketches
    if profile is not None:
        profile.update(timings)
    # the structured projection's factors: D_p's (digested in the fingerprint already) or our own
    factors_digest = {"factors_digest": fingerprint["projection"]["factors"] if factors
                      else _file_digest(out / FACTORS)} if structured else {}
    write_json(manifest_path, {"fingerprint": fingerprint, "complete": True, "n": len(records), "k": k,
                               "shards": [f"shard_{i:05d}.npy" for i, _, _ in shards], **factors_digest})
    return str(out)


def _kronecker_factors(ref, params, tok, records, out: Path, structured: dict, seed: int, factors: str | None, *,
                       max_length: int, micro: int, device: str) -> list:
    """The structured projection's factors: read from ``factors`` (D_p's, for candidates), or fit on
    ``structured["fit_examples"]`` evenly spaced ``records`` and written to ``out/FACTORS``."""
    if factors:
        pairs, meta = load_factors(factors)
        made = {key: meta.get(key) for key in ("factor", "pca", "seed")}
        if made != {"factor": structured["factor"], "pca": structured["pca"], "seed": seed}:
            raise ValueError(f"{factors} was made with {made}, these features use influence.structured "
                             f"{structured} and seed {seed}: recompute D_p's features with the same settings")
        return pairs
    own = out / FACTORS
    if own.exists():  # an interrupted run fit them already (the manifest's fingerprint matched)
        return load_factors(own)[0]
    step = -(-len(records) // structured["fit_examples"])
    encoded = sorted((encode_chat(tok, r, max_length) for r in records[::step]), key=lambda e: len(e["input_ids"]))
    batches = [collate(encoded[b:b + micro], tok.pad_token_id, device) for b in range(0, len(encoded), micro)]
    if structured["pca"]:
        batches = tqdm(batches, desc="Kronecker factors (covariances)", unit="batch", mininterval=10)
    pairs = fit_factors(ref, params, batches, factor=structured["factor"], pca=structured["pca"], seed=seed)
    save_factors(own, pairs, {**structured, "seed": seed, "fit_records": len(encoded)})
    return pairs


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
