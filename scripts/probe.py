from scoder.io import write_json
from scoder.report import build_probe
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    write_json(out[0], build_probe(s["run"], s["probe"], s["settings"], dict(inp.items()), s["stages"]))
