from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.feedback import answer

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    questions = [q for path in inp.questions for q in read_jsonl(path)]
    answers, stats = answer(questions, make_generator(s["generator"]), str(progress_dir(out.stats) / "answers"),
                            sampling=s["sampling"], model_name=s["generator"]["model"],
                            batch_size=s["generator"].get("batch_size", 8))
    write_jsonl(out.answers, answers)
    write_json(out.stats, {"stage": "soda_answer", "settings": s, **stats})
