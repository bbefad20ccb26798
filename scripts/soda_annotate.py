from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.feedback import annotation_sample, score_answers

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    answers = read_jsonl(inp.answers)
    chosen = annotation_sample(answers, s["annotate"], s["seed"])
    annotated, stats = score_answers(chosen, make_generator(s["generator"]), str(progress_dir(out.stats) / "annotate"),
                                     mode=s["mode"], max_new_tokens=s["max_new_tokens"], model_name=s["model_name"],
                                     batch_size=s["generator"].get("batch_size", 8))
    write_jsonl(out.annotations, annotated)
    write_json(out.stats, {"stage": "soda_annotate", "settings": s, "answers": len(answers), **stats})
