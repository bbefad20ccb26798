"""results/scoder_<run>.json or results/soda_<run>.json: a run's results from its stages' files."""
from scoder.io import write_json
from scoder.report import build_results
from scoder.smk import stage
from scoder.soda.report import build_results as build_soda_results

with stage(snakemake) as (inp, out, s):
    build = build_soda_results if s["method"] == "soda" else build_results
    write_json(out[0], build(s["run"], s["settings"], dict(inp.items()), s["stages"]))
