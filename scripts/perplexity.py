from scoder.influence.checkpoints import reference_checkpoints
from scoder.io import read_jsonl, write_jsonl
from scoder.perplexity import perplexities
from scoder.smk import device, stage

with stage(snakemake) as (inp, out, s):
    samples = read_jsonl(inp.data)
    adapter = str(reference_checkpoints(inp.adapter)[-1])  # the final reference model
    values = perplexities(s["model"], adapter, samples, max_length=s["max_length"],
                          **device(snakemake).model_settings())   # the gradients family's dtype, attention
    write_jsonl(out.perplexity, [{"id": r["id"], "perplexity": v} for r, v in zip(samples, values)])
