from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.llm import make_generator
from scoder.scoring import score_samples
from scoder.smk import device, stage

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    samples = [r for path in inp.samples for r in read_jsonl(path)]
    generator = make_generator(s["generator"])
    scored, stats = score_samples(samples, generator, s["aspects"], max_new_tokens=s["max_new_tokens"], mode=s["mode"],
                                  batch_size=s["generator"].get("batch_size", 16))
    write_jsonl(out.scored, scored)
    write_json(out.stats, {"stage": "score", "settings": s, "in": len(samples), "out": len(scored),
                           "usage": generator.usage, **stats})
