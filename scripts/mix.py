from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.smk import stage
from scoder.weights import experiment_mixes, mean_aspect_vector, planned_design, unidentified

with stage(snakemake) as (inp, out, s):
    scored, aspects = read_jsonl(inp.scored), s["aspects"]
    mixes = experiment_mixes(scored, k=s["experiments"], size=s["size"], seed=s["seed"], aspects=aspects)
    X, design = planned_design(mixes, aspects)
    if not design["identifiable"] and s.get("require_full_rank", True):
        raise ValueError(f"scorer.weights: {unidentified(design, aspects, X)}; refusing to start the "
                         "weight experiments' fine-tunes (scorer.weights.require_full_rank: false fits anyway)")
    mix = mixes[s["experiment"]]
    write_jsonl(out.data, mix)
    x = mean_aspect_vector(mix, aspects)
    write_json(out.stats, {"stage": "mix", "settings": s, "out": len(mix),
                           "mean_aspects": {a: None if v != v else float(v) for a, v in zip(aspects, x)},
                           "design": design})
