# Python functions with docstrings from the configured sources (Appendix A).
rule extract:
    output:
        functions=P.pattern("extract", "functions"),
        skipped=P.pattern("extract", "skipped"),
        stats=P.pattern("extract", "stats"),
    params:
        settings=node_params("extract"),
    threads: node_threads("extract")
    resources:
        **stage_resources("extract"),
    log:
        stage_log("extract"),
    benchmark:
        stage_benchmark("extract")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/extract.py"
