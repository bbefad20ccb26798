from scoder.io import write_json, write_jsonl
from scoder.pool.extract import SKIP_REASONS, extract_functions
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    # the job's threads parse files in parallel; the output does not depend on them
    records, stats, skipped = extract_functions(s["sources"], limit=s["limit"], seed=s["seed"],
                                                workers=snakemake.threads)
    write_jsonl(out.functions, records)
    write_jsonl(out.skipped, skipped)
    write_json(out.stats, {"stage": "extract", "settings": s, "out": len(records), **stats,
                           "skipped": {reason: stats[reason] for reason in SKIP_REASONS},
                           "skip_log": out.skipped})
