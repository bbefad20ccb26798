# Multi-aspect scoring (eq. 1): Z integer aspect scores per candidate, then the
# best candidate per snippet under the weighted score.
rule score:
    input:
        unpack(node_inputs("score")),
    output:
        scored=P.pattern("score", "scored"),
        stats=P.pattern("score", "stats"),
    params:
        settings=node_params("score"),
    threads: node_threads("score")
    resources:
        **stage_resources("score"),
    log:
        stage_log("score"),
    benchmark:
        stage_benchmark("score")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/score.py"


rule best:
    input:
        unpack(node_inputs("best")),
    output:
        candidates=P.pattern("best", "candidates"),
        stats=P.pattern("best", "stats"),
    params:
        settings=node_params("best"),
    threads: node_threads("best")
    resources:
        **stage_resources("best"),
    log:
        stage_log("best"),
    benchmark:
        stage_benchmark("best")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/best.py"
