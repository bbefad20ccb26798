"""results/pool_<run>.jsonl and results/pool_<run>.json: the run's snippet pool and its counts."""
from scoder.io import read_json, write_json
from scoder.pool.export import POOL_STAGES, pool_summary, write_pool
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    roles = write_pool(inp.seeds, inp.supply, out.pool)
    stats = {name: read_json(inp[f"{name}_stats"]) for name in POOL_STAGES}
    write_json(out.counts, pool_summary(s["run"], s["sources"], stats, s["dirs"], roles))
