from scoder.evaluate import evaluate_stage
from scoder.ledger import progress_dir
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    # the node's settings: the evaluation backend (`generator`) and the run's `evaluation` section
    settings = {k: v for k, v in s.items() if k != "generator"}
    evaluate_stage(inp.model, s["generator"], settings, out.scores, out.completions,
                   progress_dir=progress_dir(out.scores))
