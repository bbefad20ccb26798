from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_path
from scoder.llm import make_generator
from scoder.pool.quality import classify_quality
from scoder.smk import device, stage

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    records = read_jsonl(inp.pool)
    generator = make_generator(s["generator"])
    labelled, stats = classify_quality(records, generator, threshold=s["threshold"], shots=s.get("shots"),
                                       batch_size=s["generator"].get("batch_size", 16),
                                       progress_path=progress_path(out.labelled))
    kept = [r for r in labelled if r["quality"] == "yes"]
    write_jsonl(out.labelled, labelled)
    write_jsonl(out.pool, kept)
    write_json(out.stats, {"stage": "quality", "settings": s, "in": len(records), "out": len(kept),
                           "usage": generator.usage, **stats})
