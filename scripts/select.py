from scoder.influence import influence_values, load_features, select_top_k
from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    candidates = read_jsonl(inp.candidates)
    if s["by"] == "influence":
        values = influence_values(load_features(inp.features), load_features(inp.reference_features))
        selected = select_top_k(candidates, values, s["k"])
        # a candidate with no response tokens has no gradient: NaN, written as null
        all_values = [None if v != v else float(v) for v in values]
    else:  # ablation without influence estimation: top-K by the scorer's score
        selected = sorted(candidates, key=lambda r: -r["score"])[: s["k"]]
        all_values = [r["score"] for r in candidates]
    cut = min((r.get("influence", r["score"]) for r in selected), default=None)
    write_jsonl(out.selected, selected)
    write_json(out.stats, {"stage": "select", "settings": s, "in": len(candidates), "out": len(selected),
                           "values": all_values, "cut": cut})
