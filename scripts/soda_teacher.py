from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import stage
from scoder.soda.knowledge import teach

with stage(snakemake) as (inp, out, s):
    questions = read_jsonl(inp.questions)
    knowledge, failures, stats = teach(questions, make_generator(s["generator"]), str(progress_dir(out.stats)),
                                       sampling=s["sampling"], model_name=s["model_name"], errors=s["errors"],
                                       batch_size=s["generator"].get("batch_size", 8))
    write_jsonl(out.knowledge, knowledge)
    write_jsonl(out.failures, failures)
    write_json(out.stats, {"stage": "soda_teacher", "settings": s, **stats})
