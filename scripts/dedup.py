from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.dedup import dedup
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.functions)
    kept, dropped = dedup(records, **s)
    write_jsonl(out.pool, kept)
    write_jsonl(out.dropped, dropped)
    write_json(out.stats, {"stage": "dedup", "settings": s, "in": len(records), "out": len(kept),
                           "dropped": len(dropped)})
