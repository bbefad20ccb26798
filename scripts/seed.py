from collections import Counter

from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.seed import seed_stats, select_seeds
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    seeds, supply = select_seeds(records, per_category=s["per_category"], seed=s.get("seed", 0),
                                 min_similarity=s.get("min_similarity"), order=s.get("order", "confidence"))
    write_jsonl(out.seeds, seeds)
    write_jsonl(out.supply, supply)
    per_category = seed_stats(records, seeds, per_category=s["per_category"], min_similarity=s.get("min_similarity"))
    write_json(out.stats, {"stage": "seed", "settings": s, "in": len(records), "out": len(seeds),
                           "supply": len(supply), "seeds_per_category": dict(Counter(r["category"] for r in seeds)),
                           "confident_per_category": per_category})
