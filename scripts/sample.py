"""Multi-checkpoint sampling: one job per synthesizer checkpoint (its generator serves that checkpoint)."""
from scoder.data import supply_slice
from scoder.io import read_jsonl
from scoder.smk import stage
from scoder.synthesis import synthesize_to

with stage(snakemake) as (inp, out, s):
    snippets = supply_slice(read_jsonl(inp.snippets), s["start"], s["count"])
    synthesize_to(out.samples, snippets, s["generator"], s["sampling"], model_name=s["generator"]["model"],
                  checkpoint=int(snakemake.wildcards.m), protocol=s["protocol"])
