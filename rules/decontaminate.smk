# Decontamination: n-gram overlap with benchmark prompts and solutions.
rule decontaminate:
    input:
        unpack(node_inputs("decontaminate")),
    output:
        pool=P.pattern("decontaminate", "pool"),
        matches=P.pattern("decontaminate", "matches"),
        stats=P.pattern("decontaminate", "stats"),
    params:
        settings=node_params("decontaminate"),
    threads: node_threads("decontaminate")
    resources:
        **stage_resources("decontaminate"),
    log:
        stage_log("decontaminate"),
    benchmark:
        stage_benchmark("decontaminate")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/decontaminate.py"
