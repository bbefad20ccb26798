# Python functions with docstrings from the configured sources (Appendix A).  What the
# sources' files are is part of its key (scoder/plan.py): a file added, edited or removed
# gives extract and every stage after it new folders.
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
