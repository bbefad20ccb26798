from scoder.io import read_json, write_json
from scoder.weights import fit_experiments
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    fit = fit_experiments([read_json(p) for p in inp.mixes], [read_json(p) for p in inp.scores],
                          s["aspects"], metric=s["metric"], alpha=s["alpha"])
    write_json(out.weights, {"stage": "weights", "settings": s, "mixes": list(inp.mixes),
                             "scores": list(inp.scores), **fit})
