# SCoder: bootstrapping small open LLMs into code-instruction data synthesizers
# (arXiv 2509.07858).  `snakemake --cores 2` runs the embedded default (`tiny`);
# `snakemake --profile slurm results/scoder_q14.json` runs the paper's SCoder-Q14.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
# --- the snippet pool (Appendix A, B)
include: "rules/models.smk"
include: "rules/extract.smk"
include: "rules/dedup.smk"
include: "rules/filter.smk"
include: "rules/quality.smk"
include: "rules/decontaminate.smk"
include: "rules/categorize.smk"
include: "rules/seed.smk"
include: "rules/pool.smk"
# --- the enhanced synthesizer: D_p from the teacher, then fine-tuning (iteration 0)
include: "rules/teacher.smk"
include: "rules/synthesizer.smk"
# --- each bootstrap iteration: multi-checkpoint sampling, multi-aspect scoring,
#     gradient-based influence against D_p, top-K selection, retraining
include: "rules/sample.smk"
include: "rules/score.smk"
include: "rules/scorer.smk"
include: "rules/reference.smk"
include: "rules/influence.smk"
include: "rules/perplexity.smk"
# --- the final data, the target model (SCoder) and its evaluation
include: "rules/synthesize.smk"
include: "rules/target.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/plots.smk"
# --- SODA, the second method on the same building blocks: results/soda_<run>.json
include: "rules/soda.smk"


rule all:
    input:
        run_outputs(config["default_run"]),
    default_target: True
