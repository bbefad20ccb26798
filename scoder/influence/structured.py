"""Structured (LoGra-style) projection of per-example LoRA gradients that never forms them.

For a LoRA matrix W (out x in: a lora_A or a lora_B) one example's gradient is a sum over its
tokens of outer products, G = sum_t delta_t x_t^T (delta_t: gradient w.r.t. the layer's output,
x_t: its input).  Stage 1 sketches it with a Kronecker-factored matrix P_out (x) P_in, factors
of shapes (out, a) and (in, b):

    phi(G) = P_out^T G P_in = sum_t (P_out^T delta_t) (P_in^T x_t)^T,

an (a x b) matrix computed from the projected activations in O(T (in b + out a)) per example
instead of forming G (O(T in out)).  The sketches of all LoRA matrices are concatenated
(row-major, in ``lora_parameters`` order); stage 2 (``scoder.influence.features``) projects
that concatenation to k with the dense Rademacher projection.

Each factor of a side of size n with target size s (``factor``, the same for both sides) is

* the identity when s >= n (nothing to lose);
* otherwise [U | (I - U U^T) R / sqrt(s - p)]: U the top ``pca`` (= p) eigenvectors of that side's
  covariance over a fit set (K-FAC's: sum over tokens of x x^T for the input side and of
  delta delta^T for the output side, LoGra's PCA initialisation), R a seeded Rademacher (n x (s-p))
  matrix.  E[P P^T] = U U^T + (I - U U^T) = I, so inner products of gradients are kept in
  expectation, as a random projection does, while the directions that carry most of the
  gradients' energy are kept exactly instead of with a random projection's variance.
  ``pca: 0`` is the purely random (Rademacher) factor and needs no fit data.

Why the PCA part: LLM activations are far from isotropic, so a LoRA gradient is close to low-rank
and a purely random Kronecker factor of size s estimates its inner products about as well as a
random projection to ~2s (not s^2) dimensions.  Measured on SmolLM2-135M + a random r=128 LoRA,
64 stdlib examples, the D_p quarter as fit set, Spearman of V(d) against the full unprojected
gradient's (mean of three seeds), with stage 2 to k=8192: random 32x32 factors 0.89, random 64x64
0.96, 64x64 with 32 PCA directions 0.97; the dense k=8192 projection itself 0.97-0.98.

The factors are data-dependent: D_p's gradients job fits them (``fit_examples`` of D_p, evenly
spaced) and writes ``FACTORS`` next to its features; every candidate job projects with that file,
so D_p and the candidates share one projection.  Adam preconditioning is elementwise on the full
gradient and therefore not available here.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from scoder.influence.gradients import LoraHooks
from scoder.influence.projection import rademacher_block

FACTORS = "kronecker_factors.safetensors"
# Random streams of the factors: blocks 2**30 + 2j (the input side of LoRA matrix j) and
# 2**30 + 2j + 1 (its output side), far from the dense projection's block indices.
FACTOR_BLOCKS = 2**30
DEFAULTS = {"factor": 64, "pca": 32, "fit_examples": 1024}


def settings_of(structured: dict | None) -> dict:
    """``influence.structured`` with its defaults filled in, checked."""
    s = {**DEFAULTS, **(structured or {})}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"influence.structured: unknown settings {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    if not (s["factor"] >= 1 and 0 <= s["pca"] < s["factor"] and s["fit_examples"] >= 1):
        raise ValueError(f"influence.structured needs factor >= 1, 0 <= pca < factor and fit_examples >= 1, "
                         f"got {s}")
    return s


class _Covariances(LoraHooks):
    """K-FAC's factors of every LoRA matrix over a set of examples: sum of x x^T over real tokens
    (the input side) and of delta delta^T (the output side; zero at padding)."""

    def __init__(self, model, params):
        super().__init__(model, params)
        self.cov_in = [torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for m, _ in self.layers]
        self.cov_out = [torch.zeros(m.out_features, m.out_features, dtype=torch.float64) for m, _ in self.layers]
        self.mask: torch.Tensor | None = None

    def on_forward(self, index, x):
        flat = (x.float() * self.mask).flatten(0, 1)
        self.cov_in[index] += (flat.T @ flat).double().cpu()

    def on_backward(self, index, _, delta):
        delta = delta.float().flatten(0, 1)
        self.cov_out[index] += (delta.T @ delta).double().cpu()

    def __call__(self, batch: dict) -> None:
        self.mask = batch["attention_mask"][..., None].float()
        try:
            self.run(batch)
        finally:
            self.mask = None


def _top_eigenvectors(cov: torch.Tensor, p: int) -> torch.Tensor:
    """The p leading eigenvectors (columns), each signed so its largest entry is positive."""
    vectors = torch.linalg.eigh(cov)[1].flip(1)[:, :p]
    signs = torch.sign(vectors.gather(0, vectors.abs().argmax(0, keepdim=True)))
    return vectors * signs


def kronecker_factor(n: int, size: int, pca: int, seed: int, block: int,
                     cov: torch.Tensor | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """One side's (n, min(size, n)) float64 factor (see the module docstring); the covariance's
    eigendecomposition runs on ``device`` (a GPU's takes a fraction of a CPU's at n >= 2048)."""
    if size >= n:
        return torch.eye(n, dtype=torch.float64)
    random = rademacher_block(seed, block, n, size - pca, "cpu", torch.float64) / math.sqrt(size - pca)
    if pca == 0:
        return random
    if cov is None:
        raise ValueError("PCA directions need the fit set's covariances")
    top = _top_eigenvectors(cov.to(device), pca).cpu()
    return torch.cat([top, random - top @ (top.T @ random)], 1)


def fit_factors(model, params, batches, *, factor: int, pca: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(P_out, P_in) of every LoRA matrix, float32 on CPU; ``batches`` (collated) are the fit set,
    unused when ``pca`` is 0."""
    hooks = _Covariances(model, params)
    if pca:
        for batch in batches:
            hooks(batch)
    factors = []
    for j, (module, _) in enumerate(hooks.layers):
        device = module.weight.device
        p_in = kronecker_factor(module.in_features, factor, pca, seed, FACTOR_BLOCKS + 2 * j, hooks.cov_in[j], device)
        p_out = kronecker_factor(module.out_features, factor, pca, seed, FACTOR_BLOCKS + 2 * j + 1,
                                 hooks.cov_out[j], device)
        factors.append((p_out.float(), p_in.float()))
    return factors


def save_factors(path: str | Path, factors: list[tuple[torch.Tensor, torch.Tensor]], meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"{j}.{side}": t.contiguous() for j, pair in enumerate(factors) for side, t in zip(("out", "in"), pair)}
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata={"settings": json.dumps(meta, sort_keys=True)})
    tmp.replace(path)


def load_factors(path: str | Path) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
    """The factors and the settings they were made with."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["settings"])
        count = len({key.split(".")[0] for key in f.keys()})
        factors = [(f.get_tensor(f"{j}.out"), f.get_tensor(f"{j}.in")) for j in range(count)]
    return factors, meta


class StructuredProjection(LoraHooks):
    """Stage 1: per-example Kronecker sketches of the LoRA gradients of a batch from one forward/backward."""

    def __init__(self, model, params: list, factors: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__(model, params)
        if len(factors) != len(self.layers):
            raise ValueError(f"{len(factors)} Kronecker factor pairs for {len(self.layers)} LoRA matrices: the "
                             "factors were fit on another adapter")
        self.factors: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (P_out, P_in, offset)
        offset = 0
        for (module, _), (p_out, p_in) in zip(self.layers, factors):
            if p_out.shape[0] != module.out_features or p_in.shape[0] != module.in_features:
                raise ValueError(f"Kronecker factors of shapes {tuple(p_out.shape)}, {tuple(p_in.shape)} do not fit "
                                 f"a LoRA matrix {module.out_features} x {module.in_features}: fit on another adapter")
            device = module.weight.device
            self.factors.append((p_out.to(device, torch.float32), p_in.to(device, torch.float32), offset))
            offset += p_out.shape[1] * p_in.shape[1]
        self.dim = offset
        self.out: torch.Tensor | None = None

    def on_forward(self, index, x):
        return x.float() @ self.factors[index][1]  # (B, T, b): all the backward needs of x

    def on_backward(self, index, x_projected, delta):
        p_out, _, off = self.factors[index]
        phi = torch.bmm((delta.float() @ p_out).transpose(1, 2), x_projected)
        self.out[:, off:off + phi[0].numel()] = phi.flatten(1)

    def dense_matrix(self) -> torch.Tensor:
        """The (D, dim) matrix this projection applies to flattened gradients (block-diagonal Kronecker
        products): for tests on small models only."""
        return torch.block_diag(*[torch.kron(p_out, p_in) for p_out, p_in, _ in self.factors])

    def __call__(self, batch: dict, out: torch.Tensor | None = None) -> torch.Tensor:
        """(B, dim) sketches (into ``out`` if given, in its dtype), row b = the phi of example b's mean
        response-loss gradient for every LoRA matrix, concatenated."""
        n = batch["input_ids"].shape[0]
        if out is None:
            out = torch.empty(n, self.dim, dtype=torch.float32, device=batch["input_ids"].device)
        out.zero_()
        self.out = out
        try:
            self.run(batch)
            return out
        finally:
            self.out = None
