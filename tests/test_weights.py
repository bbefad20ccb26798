"""Eq. 2's learned weights: the K experiment datasets vary the aspects independently
enough for ridge regression to recover known weights, and a design that cannot is reported."""
import numpy as np
import pytest

from scoder.weights import (design_diagnostics, experiment_mixes, fit_experiments, fit_weights, mean_aspect_vector,
                            planned_design, unidentified)

ASPECTS = [f"aspect{i}" for i in range(10)]
TRUE = np.array([3.0, -1.0, 0.5, 2.0, 0.0, -2.0, 1.0, 0.25, -0.5, 1.5])


def scored_samples(n, seed=0, aspects=ASPECTS):
    """Integer 0-9 scores that move together, as a real scorer's do: a latent quality
    (sd 1.5) plus independent per-aspect noise (sd 1)."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n)
    return [{"id": f"s{i:04d}", "snippet_id": f"s{i:04d}",
             "aspect_scores": dict(zip(aspects, np.clip(np.rint(4.5 + 1.5 * q + rng.normal(size=len(aspects))), 0, 9)
                                       .tolist()))} for i, q in enumerate(quality)]


def test_k_mixes_recover_known_unequal_weights():
    """y_k = w·x̄_k plus a little evaluation noise: ridge with a small alpha gets w back
    from 20 mixes of correlated scores.  (The earlier design, better-vs-worse halves
    mixed in K proportions, gave a condition number near 400 and errors of 0.2 here.)"""
    samples = scored_samples(1000)
    mixes = experiment_mixes(samples, k=20, size=100, seed=0, aspects=ASPECTS)
    X, design = planned_design(mixes, ASPECTS)
    assert design["rank"] == 10 and design["identifiable"] and design["condition_number"] < 60
    y = X @ TRUE + np.random.default_rng(10).normal(scale=0.05, size=20)
    fit = fit_weights(X, y, ASPECTS, alpha=1e-3)
    assert np.abs(np.array([fit["weights"][a] for a in ASPECTS]) - TRUE).max() < 0.1
    assert fit["r2"] > 0.99 and fit["design"]["rank"] == 10 and "degenerate" not in fit
    assert fit["design"]["condition_number"] == pytest.approx(design["condition_number"])


def test_fit_experiments_reports_rank_condition_and_r2_from_the_stage_files():
    samples = scored_samples(600, seed=3)
    mixes = experiment_mixes(samples, k=20, size=60, seed=3, aspects=ASPECTS)
    stats = [{"mean_aspects": dict(zip(ASPECTS, mean_aspect_vector(m, ASPECTS).tolist()))} for m in mixes]
    X, _ = planned_design(mixes, ASPECTS)
    scores = [{"benchmarks": {"livecodebench": {"full": {"pass@1": float(v)}}}} for v in X @ TRUE]
    fit = fit_experiments(stats, scores, ASPECTS, metric="livecodebench.full", alpha=1e-6)
    assert np.allclose([fit["weights"][a] for a in ASPECTS], TRUE, atol=1e-3)
    assert fit["design"]["rank"] == 10 and fit["design"]["condition_number"] > 1 and fit["r2"] > 0.9999
    assert set(fit["design"]) >= {"rank", "aspects", "experiments", "condition_number", "condition_number_centred"}


def test_mixes_push_each_principal_direction_both_ways():
    samples = scored_samples(400, seed=1, aspects=["a", "b", "c"])
    mixes = experiment_mixes(samples, k=8, size=50, seed=1, aspects=["a", "b", "c"])
    assert len(mixes) == 8 and all(len(m) == 50 and len({s["id"] for s in m}) == 50 for m in mixes)
    means = np.array([mean_aspect_vector(m, ["a", "b", "c"]) for m in mixes])
    # experiment 0 pushes along the first principal direction (overall quality), 3 against it
    assert means[0].mean() > 5.5 > 4.5 > means[3].mean()
    # the six axis experiments move x̄ apart in every direction: full centred rank
    assert np.linalg.matrix_rank(means[:6] - means[:6].mean(0)) == 3
    assert experiment_mixes(samples, k=8, size=50, seed=1, aspects=["a", "b", "c"]) == mixes  # seeded
    # more than half the samples per set: drawn with replacement from the top half
    big = experiment_mixes(samples[:40], k=2, size=30, seed=0, aspects=["a", "b", "c"])
    assert all(len(m) == 30 and len({s["id"] for s in m}) <= 20 for m in big)


def test_unparsed_scores_are_skipped_in_the_mean_and_neutral_in_the_design():
    samples = [{"id": f"{i:03d}", "aspect_scores": {"a": i % 10, "b": None if i == 0 else i % 10}} for i in range(100)]
    assert mean_aspect_vector(samples[:2], ["a", "b"]).tolist() == [0.5, 1.0]
    mixes = experiment_mixes(samples, k=2, size=10, seed=0, aspects=["a", "b"])
    assert [len(m) for m in mixes] == [10, 10]


def test_a_degenerate_design_is_reported_not_silently_fitted():
    # two aspects the scorer always gives the same score: no data can tell them apart
    samples = scored_samples(300, seed=2, aspects=["a", "b", "c"])
    for s in samples:
        s["aspect_scores"]["b"] = s["aspect_scores"]["a"]
    mixes = experiment_mixes(samples, k=6, size=30, seed=0, aspects=["a", "b", "c"])
    X, design = planned_design(mixes, ["a", "b", "c"])
    assert design["rank"] == 2 and not design["identifiable"] and design["condition_number"] is None
    fit = fit_weights(X, X @ np.array([1.0, 2.0, 0.5]), ["a", "b", "c"], alpha=1e-6)
    assert "rank 2 < 3 aspects" in fit["degenerate"] and not fit["design"]["identifiable"]
    # fewer experiments than aspects (the embedded run's K=3): the message says what to raise
    few = experiment_mixes(scored_samples(100), k=3, size=20, seed=0, aspects=ASPECTS)
    X, design = planned_design(few, ASPECTS)
    assert design["rank"] == 3
    assert "experiments must be at least 10" in unidentified(design, ASPECTS, X)
    # an aspect that never varies is named
    flat = [{"id": str(i), "aspect_scores": {"a": i % 7, "b": 5}} for i in range(50)]
    X, design = planned_design(experiment_mixes(flat, k=4, size=10, seed=0, aspects=["a", "b"]), ["a", "b"])
    assert design["rank"] == 2  # x̄ = (m, 5): the constant b still counts as an intercept-like column
    assert design_diagnostics(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]))["condition_number_centred"] is None
    assert "do not vary across the datasets: b" in unidentified({"experiments": 3, "aspects": 2, "rank": 1},
                                                                ["a", "b"], np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]))


def test_fit_weights_recovers_known_weights_with_and_without_intercept():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 9, size=(20, 4))
    true = np.array([0.5, -1.0, 2.0, 0.0])
    fit = fit_weights(X, X @ true, ["a", "b", "c", "d"], alpha=1e-6)
    assert np.allclose([fit["weights"][a] for a in "abcd"], true, atol=1e-4)
    assert fit["intercept"] == 0.0 and fit["K"] == 20 and fit["r2"] > 0.9999 and len(fit["points"]) == 20
    shifted = fit_weights(X, X @ true + 3.0, ["a", "b", "c", "d"], alpha=1e-6, fit_intercept=True)
    assert shifted["intercept"] == pytest.approx(3.0, abs=1e-3)


def test_fit_experiments_reads_the_metric_and_names_a_missing_benchmark():
    aspects = ["a", "b"]
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 9, size=(8, 2))
    y = X @ np.array([2.0, -1.0])
    mixes = [{"mean_aspects": {"a": x[0], "b": x[1]}} for x in X]
    scores = [{"benchmarks": {"humaneval": {"base": {"pass@1": v, "n": 4}}}} for v in y]
    fit = fit_experiments(mixes, scores, aspects, metric="humaneval.base", alpha=1e-6)
    assert fit["K"] == 8 and fit["metric"] == "humaneval.base"
    assert fit["weights"]["a"] == pytest.approx(2.0, abs=1e-3) and fit["weights"]["b"] == pytest.approx(-1.0, abs=1e-3)
    # experiments that all score the same carry no signal: uniform weights, said so
    flat = fit_experiments(mixes, [{"benchmarks": {"humaneval": {"base": {"pass@1": 0.0}}}}] * 8, aspects,
                           metric="humaneval.base", alpha=1.0)
    assert flat["weights"] == {"a": 0.5, "b": 0.5} and "no signal" in flat["fallback"] and flat["r2"] is None
    with pytest.raises(ValueError, match="livecodebench.full.*no local data"):
        fit_experiments(mixes, [{"benchmarks": {}, "absent": {"livecodebench": "no local data"}}] * 8, aspects,
                        metric="livecodebench.full", alpha=1.0)
