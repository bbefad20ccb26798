from scoder.io import write_json, write_jsonl
from scoder.pool.extract import extract_functions
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records, stats = extract_functions(s["sources"], limit=s["limit"], seed=s["seed"])
    write_jsonl(out.functions, records)
    write_json(out.stats, {"stage": "extract", "settings": s, "out": len(records), **stats})
