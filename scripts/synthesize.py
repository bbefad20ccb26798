"""Synthesis samples from one model over a slice of snippets: the final data, the
per-iteration probes' data, and the scorer's training data from the original synthesizers."""
from scoder.data import supply_slice
from scoder.io import read_jsonl, write_json
from scoder.smk import device, stage
from scoder.synthesis import synthesize_to

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    supply = read_jsonl(inp.snippets)
    snippets = supply_slice(supply, s["start"], s["count"])
    stats = synthesize_to(out.samples, snippets, s["generator"], s["sampling"], model_name=s["generator"]["model"],
                          protocol=s["protocol"])
    write_json(out.stats, {"stage": "synthesize", "settings": s, "in": len(snippets), "supply": len(supply),
                           "wrapped": s["start"] + s["count"] > len(supply), **stats})
