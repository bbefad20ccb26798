from scoder.benchmarks.texts import benchmark_texts
from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.ledger import progress_dir
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.knowledge import teach
from scoder.soda.questions import TRAINING_FIELDS, decontaminate, decontamination_stats

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    questions = read_jsonl(inp.questions)
    knowledge, failures, stats = teach(questions, make_generator(s["generator"]), str(progress_dir(out.stats)),
                                       sampling=s["sampling"], model_name=s["model_name"], errors=s["errors"],
                                       batch_size=s["generator"].get("batch_size", 8))
    # the training data is the questions and the teacher's answers: both are checked (§4.6)
    d = s["decontaminate"]
    texts, absent = benchmark_texts(d["benchmarks"])
    knowledge, removed = decontaminate(knowledge, texts, fields=TRAINING_FIELDS, ngram=d.get("ngram", 5),
                                       threshold=d.get("threshold", 0.7))
    write_jsonl(out.knowledge, knowledge)
    write_jsonl(out.failures, failures)
    write_json(out.stats, {"stage": "soda_teacher", "settings": s, **stats, "kept": len(knowledge),
                           "pairs": sum(k["faulty"] is not None for k in knowledge),
                           "contaminated": len(removed), "removed": removed[:50],
                           "decontamination": decontamination_stats(texts, absent, removed)})
