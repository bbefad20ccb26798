from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.smk import stage
from scoder.soda.questions import from_file, from_supply, initial_questions

with stage(snakemake) as (inp, out, s):
    source = s["source"]
    if source["type"] == "scoder_supply":
        raw = from_supply(read_jsonl(inp.supply))
    else:
        raw = from_file(source["path"], source.get("field", "instruction"))
    d = s["decontaminate"]
    questions, stats = initial_questions(raw, limit=s["limit"], seed=s["seed"], benchmarks=d["benchmarks"],
                                         ngram=d.get("ngram", 5), threshold=d.get("threshold", 0.7))
    write_jsonl(out.questions, questions)
    write_json(out.stats, {"stage": "soda_questions", "settings": s, **stats})
