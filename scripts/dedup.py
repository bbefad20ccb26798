from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.dedup import dedup, skip_counts
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.functions)
    # the job's threads hash in parallel; the decisions do not depend on them
    kept, dropped = dedup(records, workers=snakemake.threads, **s)
    write_jsonl(out.pool, kept)
    write_jsonl(out.dropped, dropped)
    write_json(out.stats, {"stage": "dedup", "settings": s, "in": len(records), "out": len(kept),
                           "dropped": len(dropped), "skipped": skip_counts(dropped)})
