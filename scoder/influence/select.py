"""Influence values from projected gradients (paper eq. 4) and top-K selection.

V(d) = cos(g(d), mean over D_p of g(d_p)).  With several reference checkpoints (LESS), the
values of each checkpoint are combined weighted by that checkpoint's learning rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.io import read_json


def influence_values(candidate_features: np.ndarray, reference_features: np.ndarray) -> np.ndarray:
    """V(d) for each candidate row: cosine to the mean reference gradient (NaN for a zero gradient)."""
    cand = np.asarray(candidate_features, dtype=np.float64)
    ref = np.asarray(reference_features, dtype=np.float64)
    if ref.ndim != 2 or len(ref) == 0:
        raise ValueError("reference features must be a non-empty (n, k) array")
    if cand.ndim != 2 or cand.shape[1] != ref.shape[1]:
        raise ValueError(f"feature widths differ: candidates {cand.shape}, reference {ref.shape}")
    target = ref.mean(axis=0)
    norms = np.linalg.norm(cand, axis=1) * np.linalg.norm(target)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = cand @ target / norms
    values[norms == 0] = np.nan  # an example without response tokens has no gradient direction
    return values


def weighted_influence(candidate_features: Sequence[np.ndarray], reference_features: Sequence[np.ndarray],
                       weights: Sequence[float]) -> np.ndarray:
    """LESS's multi-checkpoint influence: sum over checkpoints i of w_i V_i(d), w normalised to sum 1."""
    if not (len(candidate_features) == len(reference_features) == len(weights)) or not weights:
        raise ValueError("need one candidate feature set, one reference feature set and one weight per checkpoint")
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return sum(wi * influence_values(c, r) for wi, c, r in zip(w, candidate_features, reference_features))


def checkpoint_lr_weights(checkpoints: Sequence[str]) -> list[float]:
    """Each checkpoint's weight as in LESS: the mean learning rate logged since the previous checkpoint,
    read from ``trainer_state.json`` in the checkpoint folder (checkpoints in training order)."""
    weights, previous = [], -1
    for ckpt in checkpoints:
        state = read_json(Path(ckpt) / "trainer_state.json")
        step = state["global_step"]
        lrs = [e["learning_rate"] for e in state["log_history"]
               if "learning_rate" in e and previous < e.get("step", -1) <= step]
        if not lrs:
            raise ValueError(f"{ckpt}: no learning rate logged between steps {previous} and {step}")
        weights.append(float(np.mean(lrs)))
        previous = step
    return weights


def select_top_k(records: list[dict], values: np.ndarray, k: int) -> list[dict]:
    """The ``k`` records with the highest V(d), best first (ties keep input order, NaN last);
    each returned record is a copy with its ``influence``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(records):
        raise ValueError(f"{len(records)} records but {len(values)} influence values")
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    # a stable sort keeps input order among ties; NaN sorts after every number
    order = np.argsort(np.where(np.isnan(values), np.inf, -values), kind="stable")[:k]
    return [{**records[i], "influence": float(values[i])} for i in order]
