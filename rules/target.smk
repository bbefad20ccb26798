# The target model (SCoder): phase 1 on evol-codealpaca-v1 (a stated stand-in
# where it is not available), phase 2 on the synthesized data.
rule standin:
    input:
        unpack(node_inputs("standin")),
    output:
        data=P.pattern("standin", "data"),
        stats=P.pattern("standin", "stats"),
    params:
        settings=node_params("standin"),
    threads: node_threads("standin")
    resources:
        **stage_resources("standin"),
    log:
        stage_log("standin"),
    benchmark:
        stage_benchmark("standin")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/standin.py"


rule target:
    input:
        unpack(node_inputs("target")),
    output:
        model=directory(P.pattern("target", "model")),
        log=P.pattern("target", "log"),
    params:
        settings=node_params("target"),
    threads: node_threads("target")
    resources:
        **stage_resources("target"),
    log:
        stage_log("target"),
    benchmark:
        stage_benchmark("target")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train.py"
