from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.filter import filter_functions
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    # the job's threads check records in parallel; the output does not depend on them
    kept, stats, skipped = filter_functions(records, workers=snakemake.threads, progress=True, **s)
    write_jsonl(out.pool, kept)
    write_jsonl(out.skipped, skipped)
    write_json(out.stats, {"stage": "filter", "settings": s, "in": len(records), "out": len(kept),
                           "dropped": stats["dropped"], "define_check": stats.get("define_check"),
                           "skip_log": out.skipped})
