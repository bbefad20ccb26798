from scoder.benchmarks.texts import benchmark_texts
from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.decontaminate import decontaminate, summary
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    texts, absent = benchmark_texts(s["benchmarks"])
    kept, matches = decontaminate(records, texts, n=s["n"])
    write_jsonl(out.pool, kept)
    write_jsonl(out.matches, matches)
    write_json(out.stats, {"stage": "decontaminate", "settings": s, "in": len(records), "out": len(kept),
                           "benchmark_texts": sum(map(len, texts.values())),
                           "matched_tasks": sorted({m["task_id"] for m in matches}), **summary(texts, absent, matches)})
