from scoder.io import read_jsonl, write_json
from scoder.smk import device, stage
from scoder.synthesis import synthesize_to

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    snippets = read_jsonl(inp.snippets)
    stats = synthesize_to(out.samples, snippets, s["generator"], s["sampling"], model_name=s["model_name"],
                          protocol=s["protocol"])
    write_json(out.stats, {"stage": "teacher", "settings": s, "in": len(snippets), **stats})
