from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.update import write_questions

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    existing = {q["question"] for path in inp.questions for q in read_jsonl(path)}
    questions, stats = write_questions(read_jsonl(inp.levels), make_generator(s["generator"]),
                                       str(progress_dir(out.stats) / "update"), total=s["total"],
                                       ratio=s["ratio"], cycle=s["cycle"], sampling=s["sampling"],
                                       model_name=s["model_name"], by=s["by"], seed=s["seed"],
                                       batch_size=s["generator"].get("batch_size", 8), existing=existing)
    write_jsonl(out.questions, questions)
    write_json(out.stats, {"stage": "soda_update", "settings": s, **stats})
