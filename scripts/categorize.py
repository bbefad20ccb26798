from collections import Counter

from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.categorize import categorize, category_stats
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    records = categorize(records, s["categories"], embedder=s["embedder"],
                         embedder_kind=s.get("embedder_kind", "sentence-transformers"),
                         instructions=s.get("instructions"), batch_size=s.get("batch_size", 32),
                         max_length=s.get("max_length"), dtype=s.get("dtype", "float32"))
    write_jsonl(out.pool, records)
    write_json(out.stats, {"stage": "categorize", "settings": s, "in": len(records), "out": len(records),
                           "categories": dict(Counter(r["category"] for r in records)),
                           "confidence": category_stats(records)})
