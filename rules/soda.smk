# SODA (FSE 2025), the second method on the same building blocks:
# `snakemake results/soda_<run>.json` for a run under `soda_runs:` in config.yaml.
# Stages, in the order of one cycle (scoder/soda/plan.py lays out the nodes):
#   questions -> [teacher -> split -> sft -> dpo]            Stage I, knowledge delivery
#   -> answer -> (annotate -> scorer) -> feedback             Stage II, multi-view feedback
#   -> update                                                 Stage III, new questions (1:1:2)
#   ... cycles ... -> evaluate -> results/soda_<run>.json
from scoder.config import validate_soda
from scoder.soda import plan as SP

try:
    SODA_PLAN = SP.SodaPlan(validate_soda(config), PLAN)
except (ConfigError, ValueError) as error:
    raise WorkflowError(str(error)) from None
PLANS.append(SODA_PLAN)


# The initial seed knowledge: questions, decontaminated against the benchmarks.
rule soda_questions:
    input:
        unpack(node_inputs("soda_questions")),
    output:
        questions=SP.pattern("soda_questions", "questions"),
        stats=SP.pattern("soda_questions", "stats"),
    params:
        settings=node_params("soda_questions"),
    threads: node_threads("soda_questions")
    resources:
        **stage_resources("soda_questions"),
    log:
        stage_log("soda_questions"),
    benchmark:
        stage_benchmark("soda_questions")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/soda_questions.py"

# Stage I: the teacher's correct and faulty solution per new question.
rule soda_teacher:
    input:
        unpack(node_inputs("soda_teacher")),
    output:
        knowledge=SP.pattern("soda_teacher", "knowledge"),
        failures=SP.pattern("soda_teacher", "failures"),
        stats=SP.pattern("soda_teacher", "stats"),
    params:
        settings=node_params("soda_teacher"),
    threads: node_threads("soda_teacher")
    resources:
        **stage_resources("soda_teacher"),
    log:
        stage_log("soda_teacher"),
    benchmark:
        stage_benchmark("soda_teacher")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/soda_teacher.py"

# The seeded 80/20 split: SFT examples and fault-aware (DPO) pairs.
rule soda_split:
    input:
        unpack(node_inputs("soda_split")),
    output:
        sft=SP.pattern("soda_split", "sft"),
        fcl=SP.pattern("soda_split", "fcl"),
        stats=SP.pattern("soda_split", "stats"),
    params:
        settings=node_params("soda_split"),
    threads: node_threads("soda_split")
    resources:
        **stage_resources("soda_split"),
    log:
        stage_log("soda_split"),
    benchmark:
        stage_benchmark("soda_split")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/soda_split.py"

# Correctness-aware supervised learning (eq. 1).
rule soda_sft:
    input:
        unpack(node_inputs("soda_sft")),
    output:
        model=directory(SP.pattern("soda_sft", "model")),
        log=SP.pattern("soda_sft", "log"),
    params:
        settings=node_params("soda_sft"),
    threads: node_threads("soda_sft")
    resources:
        **stage_resources("soda_sft"),
    log:
        stage_log("soda_sft"),
    benchmark:
        stage_benchmark("soda_sft")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/soda_train.py"

# Fault-aware contrastive learning (eq. 2): DPO with the SFT model as reference.
rule soda_dpo:
    input:
        unpack(node_inputs("soda_dpo")),
    output:
        model=directory(SP.pattern("soda_dpo", "model")),
        log=SP.pattern("soda_dpo", "log"),
    params:
        settings=node_params("soda_dpo"),
    threads: node_threads("soda_dpo")
    resources:
        **stage_resources("soda_dpo"),
    log:
        stage_log("soda_dpo"),
    benchmark:
        stage_benchmark("soda_dpo")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/soda_train.py"

# Stage II: the student answers the cycle's questions.
rule soda_answer:
    input:
        unpack(node_inputs("soda_answer")),
    output:
        answers=SP.pattern("soda_answer", "answers"),
        stats=SP.pattern("soda_answer", "stats"),
    params:
        settings=node_params("soda_answer"),
    threads: node_threads("soda_answer")
    resources:
        **stage_resources("soda_answer"),
    log:
        stage_log("soda_answer"),
    benchmark:
        stage_benchmark("soda_answer")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/soda_answer.py"

# The annotator (GPT-4 in the paper) scores a sample of the first cycle's answers.
rule soda_annotate:
    input:
        unpack(node_inputs("soda_annotate")),
    output:
        annotations=SP.pattern("soda_annotate", "annotations"),
        stats=SP.pattern("soda_annotate", "stats"),
    params:
        settings=node_params("soda_annotate"),
    threads: node_threads("soda_annotate")
    resources:
        **stage_resources("soda_annotate"),
    log:
        stage_log("soda_annotate"),
    benchmark:
        stage_benchmark("soda_annotate")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/soda_annotate.py"

# The scoring model, fine-tuned on the annotated scores.
rule soda_scorer:
    input:
        unpack(node_inputs("soda_scorer")),
    output:
        model=directory(SP.pattern("soda_scorer", "model")),
        log=SP.pattern("soda_scorer", "log"),
    params:
        settings=node_params("soda_scorer"),
    threads: node_threads("soda_scorer")
    resources:
        **stage_resources("soda_scorer"),
    log:
        stage_log("soda_scorer"),
    benchmark:
        stage_benchmark("soda_scorer")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/soda_train.py"

# Multi-view feedback: scorer points and sandboxed Pass/Fail -> easy / medium / hard.
rule soda_feedback:
    input:
        unpack(node_inputs("soda_feedback")),
    output:
        levels=SP.pattern("soda_feedback", "levels"),
        stats=SP.pattern("soda_feedback", "stats"),
    params:
        settings=node_params("soda_feedback"),
    threads: node_threads("soda_feedback")
    resources:
        **stage_resources("soda_feedback"),
    log:
        stage_log("soda_feedback"),
    benchmark:
        stage_benchmark("soda_feedback")
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/soda_feedback.py"

# Stage III: the teacher writes the next cycle's questions (easy:medium:hard = 1:1:2).
rule soda_update:
    input:
        unpack(node_inputs("soda_update")),
    output:
        questions=SP.pattern("soda_update", "questions"),
        stats=SP.pattern("soda_update", "stats"),
    params:
        settings=node_params("soda_update"),
    threads: node_threads("soda_update")
    resources:
        **stage_resources("soda_update"),
    log:
        stage_log("soda_update"),
    benchmark:
        stage_benchmark("soda_update")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/soda_update.py"

# Benchmarks: pass@1 greedy, pass@10 sampled, the model score; code runs only in the sandbox.
rule soda_evaluate:
    input:
        unpack(node_inputs("soda_evaluate")),
    output:
        results=SP.pattern("soda_evaluate", "results"),
        completions=SP.pattern("soda_evaluate", "completions"),
    params:
        settings=node_params("soda_evaluate"),
    threads: node_threads("soda_evaluate")
    resources:
        **stage_resources("soda_evaluate"),
    log:
        stage_log("soda_evaluate"),
    benchmark:
        stage_benchmark("soda_evaluate")
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/soda_evaluate.py"

# results/soda_<run>.json: benchmarks, per-cycle counts, costs and provenance.
rule soda_report:
    input:
        unpack(report_inputs(SODA_PLAN)),
    output:
        "results/soda_{run}.json",
    params:
        settings=report_params(SODA_PLAN, "soda"),
    log:
        "logs/soda_report_{run}.log",
    benchmark:
        "logs/soda_report_{run}.benchmark.tsv"
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"


# results/soda_<run>.md: the run's Table 1 block, and Figure 5 from its ablation runs' results.
rule soda_tables:
    input:
        results="results/soda_{run}.json",
    output:
        "results/soda_{run}.md",
    params:
        settings=ablation_table_params(SODA_PLAN),
    log:
        "logs/soda_tables_{run}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/soda_tables.py"
