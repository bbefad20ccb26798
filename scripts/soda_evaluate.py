from scoder.io import write_json, write_jsonl
from scoder.llm import make_generator
from scoder.smk import device, stage
from scoder.soda.evaluate import evaluate_student

with stage(snakemake) as (inp, out, s):
    for key in ("generator", "scorer_generator"):  # with the family's dtype and attention
        s[key] = device(snakemake).generator_spec(s[key])
    student = make_generator(s["generator"])
    scorer = make_generator(s["scorer_generator"])
    # the OpenAI chat API cannot continue EvalPlus's prefilled answer (as scoder.evaluate)
    settings = {"prefill": s["generator"].get("backend") != "openai", **s}
    result, completions = evaluate_student(student, scorer, settings, scorer_mode=s["scorer"]["mode"],
                                           scorer_max_new_tokens=s["scorer"]["max_new_tokens"])
    write_jsonl(out.completions, completions)
    write_json(out.results, {**result, "model": inp.model, "usage": student.usage})
