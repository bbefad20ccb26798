from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.decontaminate import benchmark_texts, decontaminate
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    texts = benchmark_texts(s["benchmarks"])
    kept, matches = decontaminate(records, texts, n=s["n"])
    write_jsonl(out.pool, kept)
    write_jsonl(out.matches, matches)
    write_json(out.stats, {"stage": "decontaminate", "settings": s, "in": len(records), "out": len(kept),
                           "benchmark_texts": len(texts), "matched_tasks": sorted({m["task_id"] for m in matches})})
