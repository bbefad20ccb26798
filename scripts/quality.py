from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.pool.quality import classify_quality
from scoder.smk import stage
from scoder.steps import generator_for, progress_path

with stage(snakemake) as (inp, out, s):
    records = read_jsonl(inp.pool)
    generator = generator_for(s["generator"])
    progress = progress_path(out.labelled)
    progress.parent.mkdir(parents=True, exist_ok=True)
    labelled, stats = classify_quality(records, generator, threshold=s["threshold"], shots=s.get("shots"),
                                       batch_size=s["generator"].get("batch_size", 16), progress_path=progress)
    kept = [r for r in labelled if r["quality"] == "yes"]
    write_jsonl(out.labelled, labelled)
    write_jsonl(out.pool, kept)
    write_json(out.stats, {"stage": "quality", "settings": s, "in": len(records), "out": len(kept),
                           "usage": generator.usage, **stats})
