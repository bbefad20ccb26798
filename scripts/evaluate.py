from scoder.evaluate import build_prompt, evaluate_humaneval, extract_solution, load_humaneval
from scoder.io import write_json, write_jsonl
from scoder.smk import stage
from scoder.steps import generator_for

with stage(snakemake) as (inp, out, s):
    he = s["humaneval"]
    style = he.get("style", "instruct")
    problems = load_humaneval(limit=he.get("limit"))
    generator = generator_for({**s["generator"], "model": inp.model})
    prompts = [build_prompt(p, style) for p in problems]
    outputs = generator.generate(prompts, temperature=0.0, max_new_tokens=he.get("max_new_tokens", 512), n=1)
    completions = {p["task_id"]: o[0] for p, o in zip(problems, outputs)}
    result = evaluate_humaneval(problems, completions, style)
    write_jsonl(out.completions, [{"task_id": t, "completion": c, "solution": extract_solution(p, c, style)}
                                  for p, (t, c) in zip(problems, completions.items())])
    write_json(out.humaneval, {**result, "style": style, "model": inp.model})
