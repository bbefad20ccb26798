from scoder.evaluate import evaluate_stage
from scoder.ledger import progress_dir
from scoder.smk import device, stage

with stage(snakemake) as (inp, out, s):
    s["generator"] = device(snakemake).generator_spec(s["generator"])  # + family dtype, attention
    # the node's settings: the evaluation backend (`generator`) and the run's `evaluation` section
    settings = {k: v for k, v in s.items() if k != "generator"}
    evaluate_stage(inp.model, s["generator"], settings, out.scores, out.completions,
                   progress_dir=progress_dir(out.scores))
