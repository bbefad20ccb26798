"""Learning the aspect weights of eq. 2 (SCoder §3.3, Appendix C).

K experiments: each builds a training set from scored samples, fine-tunes the
target base model on it and scores the model on a held-out benchmark (y_k); w
solves the ridge regression of y_k on the sets' mean aspect vectors x̄_k
(eq. 2, no intercept).  Ridge can only tell the aspects apart if the x̄_k vary
them independently, so the K sets are designed to (``experiment_mixes``) and the
design matrix's rank and condition number are reported with the fit's R²
(``design_diagnostics``); a design of rank below the number of aspects is
reported as not identified, and the mix stage refuses it before any fine-tune
when ``scorer.weights.require_full_rank`` is set.

    mixes = experiment_mixes(scored, k=20, size=2000, seed=0, aspects=ASPECTS)
    X = design_matrix([mean_aspect_vector(m, ASPECTS) for m in mixes])
    design_diagnostics(X)       # {"rank": 10, "condition_number": ..., ...}
    fit = fit_weights(X, y, ASPECTS, alpha=1.0)
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge


def mean_aspect_vector(samples: list[dict], aspects: list[str]) -> np.ndarray:
    """x̄: per-aspect mean score over a dataset, skipping unparsed (None) scores; NaN if none."""
    cols = np.array([[np.nan if s["aspect_scores"].get(a) is None else s["aspect_scores"][a]
                      for a in aspects] for s in samples], dtype=float).reshape(len(samples), len(aspects))
    with np.errstate(all="ignore"):
        return np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in cols.T])


def _aspect_matrix(samples: list[dict], aspects: list[str]) -> np.ndarray:
    """(N, Z) aspect scores, an unparsed score filled with its aspect's mean (0 if none parsed)."""
    A = np.array([[np.nan if s["aspect_scores"].get(a) is None else float(s["aspect_scores"][a])
                   for a in aspects] for s in samples], dtype=float).reshape(len(samples), len(aspects))
    with np.errstate(all="ignore"):
        fill = np.where(np.isfinite(A).any(0), np.nanmean(np.where(np.isfinite(A), A, np.nan), 0), 0.0)
    return np.where(np.isfinite(A), A, fill)


def whitened_scores(samples: list[dict], aspects: list[str]) -> np.ndarray:
    """(N, r) the samples' aspect vectors in principal coordinates (largest variance first,
    each oriented towards higher scores), each of unit variance; r = the number of
    directions in which the scores vary at all."""
    A = _aspect_matrix(samples, aspects)
    centred = A - A.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(A) - 1, 1))
    order = np.argsort(-values)
    values, vectors = values[order], vectors[:, order]
    vectors = vectors * np.where(vectors.sum(0) < 0, -1.0, 1.0)  # + = higher scores overall, for reading
    keep = values > 1e-9 * max(float(values.max(initial=0.0)), 1e-12)
    return centred @ vectors[:, keep] / np.sqrt(values[keep])


def experiment_mixes(samples: list[dict], *, k: int, size: int, seed: int,
                     aspects: list[str] | None = None) -> list[list[dict]]:
    """K training sets of ``size`` samples whose mean aspect vectors spread over the aspect
    space as far as the scored samples allow (the design of eq. 2's experiments).

    The paper does not say how its K=20 datasets were built; this is our design.  Real
    aspect scores are strongly correlated (a good sample tends to score well on every
    aspect), so sets that only run from worse to better samples would move x̄ along one
    line and leave the weights unidentified.  Instead the samples' aspect vectors are
    whitened (principal directions, each scaled to unit variance; r = the directions in
    which they vary) and experiment j is pushed along its own direction: +e_1 .. +e_r
    for the first r experiments, -e_1 .. -e_r for the next r, seeded random unit
    directions after that.  Each set is the ``size`` samples with the largest projection
    on its direction (ties broken at random), i.e. as far along it as the data reaches;
    when ``size`` is more than half the samples, ``size`` draws with replacement from
    the top half.  In whitened coordinates the 2r mean shifts are then ±c·e_j, an
    orthogonal design; in the aspects' own units the condition number is what the
    scores' covariance allows.  ``aspects`` defaults to every aspect the samples have.
    """
    if k < 1 or size < 1 or len(samples) < 2:
        raise ValueError("need k >= 1, size >= 1 and at least two samples")
    aspects = aspects or sorted({a for s in samples for a in s["aspect_scores"]})
    U = whitened_scores(samples, aspects)
    r = U.shape[1]
    rng = np.random.default_rng(seed)
    take = min(size, max(1, len(samples) // 2))
    mixes = []
    for j in range(k):
        if r == 0:  # the scores never vary: no direction to push along
            direction = np.zeros(0)
        elif j < 2 * r:
            direction = np.eye(r)[j % r] * (1.0 if j < r else -1.0)
        else:
            direction = rng.normal(size=r)
            direction /= np.linalg.norm(direction)
        order = np.lexsort((rng.random(len(samples)), -(U @ direction)))  # last key sorts first
        top = order[:take]
        picks = rng.permutation(top) if take == size else rng.choice(top, size, replace=True)
        mixes.append([samples[i] for i in picks])
    return mixes


def design_matrix(mean_vectors) -> np.ndarray:
    """(K, Z) rows x̄_k; an aspect no sample of a set had a score for counts as the mean
    of that set's other aspects.  ``ValueError`` for a set without any score."""
    rows = []
    for k, row in enumerate(np.asarray(mean_vectors, dtype=float)):
        if not np.isfinite(row).any():
            raise ValueError(f"experiment {k}: no aspect score parsed in its data; check the annotation stage")
        rows.append(np.where(np.isfinite(row), row, np.nanmean(row)))
    return np.array(rows)


def design_diagnostics(X) -> dict:
    """How well a (K, Z) design identifies Z weights: rank, condition number of X (the
    regression's design, eq. 2 has no intercept) and of X minus its mean (how far the
    experiments move x̄ apart), singular values; condition numbers are None when the
    rank is below Z (infinite)."""
    X = np.asarray(X, dtype=float)
    K, Z = X.shape

    def cond(M):
        sv = np.linalg.svd(M, compute_uv=False)
        return sv, (float(sv[0] / sv[-1]) if len(sv) == Z and sv[-1] > sv[0] * 1e-12 else None)

    sv, condition = cond(X)
    _, centred = cond(X - X.mean(0)) if K > 1 else (None, None)
    rank = int(np.linalg.matrix_rank(X))
    return {"experiments": K, "aspects": Z, "rank": rank, "identifiable": rank == Z,
            "condition_number": condition, "condition_number_centred": centred,
            "singular_values": [float(v) for v in sv]}


def unidentified(design: dict, aspects: list[str], X=None) -> str:
    """Why a design of rank below Z leaves the weights unidentified, and what to change."""
    K, Z, rank = design["experiments"], design["aspects"], design["rank"]
    why = [f"the K={K} experiment datasets' mean aspect vectors have rank {rank} < {Z} aspects, so ridge "
           "regression (eq. 2) cannot tell the aspects' weights apart"]
    if K < Z:
        why.append(f"scorer.weights.experiments must be at least {Z}")
    if X is not None and K > 1:
        flat = [a for a, c in zip(aspects, np.ptp(np.asarray(X, dtype=float), axis=0)) if c < 1e-9]
        if flat:
            why.append(f"these aspects do not vary across the datasets: {', '.join(flat)} "
                       "(check the scorer's output for them)")
    return "; ".join(why)


def fit_weights(X: np.ndarray, y: np.ndarray, aspects: list[str], *, alpha: float,
                fit_intercept: bool = False) -> dict:
    """Ridge regression of experiment scores y_k on mean aspect vectors x̄_k (eq. 2, λ = alpha),
    with the design's diagnostics and R².  Eq. 2 has no intercept, hence
    fit_intercept=False by default; with True the intercept is fitted unpenalised."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape != (len(y), len(aspects)):
        raise ValueError(f"X must be (K, {len(aspects)}) and y (K,); got {X.shape} and {y.shape}")
    model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    pred = model.predict(X)
    design = design_diagnostics(X)
    fit = {
        "weights": {a: float(w) for a, w in zip(aspects, model.coef_)},
        "intercept": float(model.intercept_),
        "alpha": float(alpha),
        "K": int(len(y)),
        "r2": float(model.score(X, y)) if len(y) > 1 and np.ptp(y) > 0 else None,
        "design": design,
        "points": [
            {"x": dict(zip(aspects, map(float, xk))), "y": float(yk), "predicted": float(pk)}
            for xk, yk, pk in zip(X, y, pred)
        ],
    }
    if not design["identifiable"]:
        fit["degenerate"] = (unidentified(design, aspects, X) + "; the weights are ridge's minimum-norm "
                             "solution within the directions the experiments span")
    return fit


def metric_value(scores: dict, metric: str) -> float | None:
    """pass@1 of ``<benchmark>.<variant>`` in an evaluation's scores.json, or None if absent."""
    bench, variant = metric.split(".", 1)
    entry = scores.get("benchmarks", {}).get(bench, {}).get(variant)
    return None if entry is None else float(entry["pass@1"])


def fit_experiments(mixes: list[dict], scores: list[dict], aspects: list[str], *, metric: str,
                    alpha: float) -> dict:
    """Eq. 2 over the K weight experiments: x̄_k from each mix's stats, y_k = ``metric`` of its
    fine-tuned model's evaluation.  Unscored aspects count as the mean of the others."""
    y = []
    for k, score in enumerate(scores):
        value = metric_value(score, metric)
        if value is None:
            reason = score.get("absent", {}).get(metric) or score.get("absent", {}).get(metric.split(".")[0])
            raise ValueError(f"scorer.weights.metric: experiment {k} has no {metric} score "
                             f"({reason or 'not evaluated'}); name a benchmark that scorer.weights.benchmark runs")
        y.append(value)
    X = design_matrix([[np.nan if m["mean_aspects"].get(a) is None else m["mean_aspects"][a] for a in aspects]
                       for m in mixes])
    fit = {"metric": metric, **fit_weights(X, np.array(y), aspects, alpha=alpha)}
    if np.ptp(y) == 0:
        # every experiment scored the same: the regression says nothing about the aspects
        # (its weights are all 0 and would rank every candidate equal), so fall back to uniform
        fit["fitted_weights"] = fit["weights"]
        fit["weights"] = {a: 1.0 / len(aspects) for a in aspects}
        fit["fallback"] = (f"all {len(y)} experiments scored {y[0]} on {metric}: no signal to fit, "
                           "uniform weights used (raise the experiments' size or pick a finer metric)")
    return fit


def planned_design(mixes: list[list[dict]], aspects: list[str]) -> tuple[np.ndarray, dict]:
    """The design matrix the K mixes will give and its diagnostics, before any fine-tune."""
    X = design_matrix([mean_aspect_vector(m, aspects) for m in mixes])
    return X, design_diagnostics(X)
