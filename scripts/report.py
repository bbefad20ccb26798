from scoder.io import write_json
from scoder.report import build_results
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    files = {name: path for name, path in inp.items()}
    write_json(out[0], build_results(s["run"], s["settings"], files, s["stages"]))
