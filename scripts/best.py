from statistics import mean

from scoder.io import read_json, read_jsonl, write_json, write_jsonl
from scoder.scoring import aspect_weights, best_candidates, random_candidates
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    if s["selector"] == "random":  # no multi-aspect scoring
        samples = [r for path in inp.scored for r in read_jsonl(path)]
        best, weights = random_candidates(samples, seed=s["seed"]), None
    else:
        samples = read_jsonl(inp.scored)
        learned = read_json(inp.weights) if inp.get("weights") else None
        weights = aspect_weights(s["weights"], s["aspects"], learned)
        best = best_candidates(samples, selector=s["selector"], weights=weights)
    write_jsonl(out.candidates, best)
    scores = [r["score"] for r in best if r["score"] is not None]
    write_json(out.stats, {"stage": "best", "settings": s, "weights": weights, "in": len(samples),
                           "out": len(best), "snippets": len({r["snippet_id"] for r in samples}),
                           "mean_score": mean(scores) if scores else None,
                           "aspect_scores": {a: [r["aspect_scores"].get(a) for r in samples]
                                             for a in s.get("aspects", [])}})
