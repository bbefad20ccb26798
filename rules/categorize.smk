# Each snippet gets the most similar of the ten task categories (Appendix B).
rule categorize:
    input:
        unpack(node_inputs("categorize")),
    output:
        pool=P.pattern("categorize", "pool"),
        stats=P.pattern("categorize", "stats"),
    params:
        settings=node_params("categorize"),
    threads: node_threads("categorize")
    resources:
        **stage_resources("categorize"),
    log:
        stage_log("categorize"),
    benchmark:
        stage_benchmark("categorize")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/categorize.py"
