from statistics import mean

from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.scoring import best_candidates
from scoder.smk import stage


def aspect_weights(spec: dict, aspects: list[str]) -> dict:
    if spec["method"] == "uniform":
        return {a: 1.0 / len(aspects) for a in aspects}
    missing = [a for a in aspects if a not in spec.get("weights", {})]
    if missing:
        raise ValueError(f"scorer.weights.weights: no weight for aspect(s) {', '.join(missing)}")
    return {a: float(spec["weights"][a]) for a in aspects}


with stage(snakemake) as (inp, out, s):
    scored = read_jsonl(inp.scored)
    weights = aspect_weights(s["weights"], s["aspects"])
    best = best_candidates(scored, selector=s["selector"], weights=weights)
    write_jsonl(out.candidates, best)
    write_json(out.stats, {"stage": "best", "settings": s, "weights": weights, "in": len(scored),
                           "out": len(best), "snippets": len({r["snippet_id"] for r in scored}),
                           "mean_score": mean(r["score"] for r in best) if best else None,
                           "aspect_scores": {a: [r["aspect_scores"].get(a) for r in scored] for a in s["aspects"]}})
