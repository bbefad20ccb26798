"""Top-K candidates of one iteration (all shards) by influence V(d) or an ablation's criterion."""
from scoder.influence.select import select, selection_cut
from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.smk import stage


def files(named):
    return [] if named is None else [named] if isinstance(named, str) else list(named)


with stage(snakemake) as (inp, out, s):
    candidates = [r for path in files(inp.candidates) for r in read_jsonl(path)]
    perplexity = [row["perplexity"] for path in files(inp.get("perplexity")) for row in read_jsonl(path)]
    selected, values = select(candidates, s["size"], s["by"], seed=s.get("seed", 0),
                              features=files(inp.get("features")), reference_features=inp.get("reference_features"),
                              perplexity=perplexity)
    write_jsonl(out.selected, selected)
    write_json(out.stats, {"stage": "select", "settings": s, "in": len(candidates), "out": len(selected),
                           "values": values, "cut": selection_cut(selected, s["by"])})
