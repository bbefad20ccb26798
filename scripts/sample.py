"""Multi-checkpoint sampling: one job per synthesizer checkpoint (its generator serves that checkpoint)."""
from scoder.data import supply_slice
from scoder.io import read_jsonl
from scoder.smk import device, stage
from scoder.synthesis import synthesize_to

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    snippets = supply_slice(read_jsonl(inp.snippets), s["start"], s["count"])
    synthesize_to(out.samples, snippets, s["generator"], s["sampling"], model_name=s["generator"]["model"],
                  checkpoint=int(snakemake.wildcards.m), protocol=s["protocol"])
