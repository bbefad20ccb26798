"""Influence values from projected gradients (paper eq. 4) and top-K selection.

V(d) = cos(g(d), mean over D_p of g(d_p)).  With several reference checkpoints (LESS), the
values of each checkpoint are combined weighted by that checkpoint's learning rate
(``influence_from_features`` reads both ``gradients_stage`` outputs and does it).  ``select``
also implements the selectors the paper compares against (Table 4, Figure 4): the scorer's
score, random, lowest or highest response perplexity.
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
    if len(cand) == 0:
        return np.zeros(0)
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
    """LESS's weights of HF Trainer checkpoint folders (training order), from each one's ``trainer_state.json``:
    the mean learning rate logged since the previous checkpoint."""
    from scoder.influence.checkpoints import lr_weights

    states = [read_json(Path(c) / "trainer_state.json") for c in checkpoints]
    history = {e["step"]: e for s in states for e in s["log_history"] if "learning_rate" in e}  # each step once
    return lr_weights(list(history.values()), [s["global_step"] for s in states])


def load_feature_sets(features_dir: str) -> tuple[list[np.ndarray], list[float], list[dict]]:
    """Per reference checkpoint: the features, the weight and the manifest of a ``gradients_stage`` folder
    (a single ``projected_gradients`` folder counts as one checkpoint of weight 1)."""
    from scoder.influence.checkpoints import CHECKPOINTS
    from scoder.influence.features import load_features, load_manifest

    folder = Path(features_dir)
    if not (folder / CHECKPOINTS).exists():
        return [load_features(str(folder))], [1.0], [load_manifest(str(folder))]
    index = read_json(folder / CHECKPOINTS)
    dirs = [str(folder / name) for name in index["checkpoints"]]
    return [load_features(d) for d in dirs], index["weights"], [load_manifest(d) for d in dirs]


def influence_from_features(candidates_dirs: str | Sequence[str], reference_dir: str) -> np.ndarray:
    """V(d) of every candidate from the candidates' features (one folder, or one per shard, rows
    concatenated in order) and D_p's, combined over the reference checkpoints with LESS's weights;
    all must come from the same reference checkpoints and projection."""
    ref, weights, ref_manifests = load_feature_sets(reference_dir)
    shards = [candidates_dirs] if isinstance(candidates_dirs, (str, Path)) else list(candidates_dirs)
    parts = []
    for folder in shards:
        cand, cand_weights, cand_manifests = load_feature_sets(str(folder))
        if len(cand) != len(ref) or not np.allclose(cand_weights, weights):
            raise ValueError(f"{folder} and {reference_dir} come from different reference checkpoints")
        for c, r in zip(cand_manifests, ref_manifests):
            same = ("model", "adapter_digest", "k", "seed", "max_length", "model_dtype", "projection")
            # the structured projection: the same Kronecker factors (D_p's), however each side got them
            cf, rf = ({**m["fingerprint"], "projection": {**m["fingerprint"]["projection"],
                                                          "factors": m.get("factors_digest")}}
                      for m in (c, r))
            diff = [key for key in same if cf[key] != rf[key]]
            if diff:
                raise ValueError(f"{folder} and {reference_dir} differ in {diff}: recompute both with the same settings")
        parts.append(cand)
    if not parts:
        return np.zeros(0)
    cand = [np.concatenate([part[m] for part in parts]) for m in range(len(ref))]
    if len(cand) == 1:
        return influence_values(cand[0], ref[0])
    return weighted_influence(cand, ref, weights)


def select_top_k(records: list[dict], values: np.ndarray, size: int, key: str = "influence",
                 descending: bool = True) -> list[dict]:
    """The top-K: the ``size`` records with the highest (``descending``) or lowest values, best first
    (ties keep input order, NaN last); each returned record is a copy with its value under ``key``
    (NaN as None)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(records):
        raise ValueError(f"{len(records)} records but {len(values)} values")
    if size < 0:
        raise ValueError(f"the selection size must be >= 0, not {size}")
    # a stable sort keeps input order among ties; NaN sorts after every number
    order = np.argsort(np.where(np.isnan(values), np.inf, -values if descending else values),
                       kind="stable")[:size]
    return [{**records[i], key: None if np.isnan(values[i]) else float(values[i])} for i in order]


SELECTIONS = ("influence", "score", "random", "low_perplexity", "high_perplexity")
# the field each selection writes its value to, and whether larger values come first
_VALUES = {"influence": ("influence", True), "score": ("score", True), "random": ("random_rank", False),
           "low_perplexity": ("perplexity", False), "high_perplexity": ("perplexity", True)}


def select(candidates: list[dict], size: int, by: str = "influence", *, seed: int = 0,
           features: Sequence[str] = (), reference_features: str | None = None,
           perplexity: Sequence[float | None] = ()) -> tuple[list[dict], list[float | None]]:
    """One iteration's top-K (K = ``size``) and every candidate's value: by influence V(d) (eq. 4, from
    the features folders), or Table 4 / Figure 4's alternatives: the scorer's score, random, lowest or
    highest response perplexity.  A missing value (no response tokens) is never preferred."""
    if by not in _VALUES:
        raise ValueError(f"bootstrap.selection must be one of {SELECTIONS}, not {by!r}")
    if by == "influence":
        values = influence_from_features(features, reference_features)
    elif by == "score":
        values = np.array([r["score"] for r in candidates], dtype=np.float64)
    elif by == "random":
        values = np.random.default_rng(seed).permutation(len(candidates)).astype(np.float64)
    else:
        values = np.array([np.nan if v is None else v for v in perplexity], dtype=np.float64)
    selected = select_top_k(candidates, values, size, *_VALUES[by])
    return selected, [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def selection_cut(selected: list[dict], by: str) -> float | None:
    """The value of the last record selected ``by`` a criterion: the selection's threshold (None if
    nothing was selected, or the last one has no value)."""
    return selected[-1][_VALUES[by][0]] if selected else None
