# Invalid-function filtering: syntax, `return <value>`, banned imports, length, methods;
# dependencies supplemented, each kept snippet defined on its own in the sandbox.
rule filter:
    input:
        unpack(node_inputs("filter")),
    output:
        pool=P.pattern("filter", "pool"),
        skipped=P.pattern("filter", "skipped"),
        stats=P.pattern("filter", "stats"),
    params:
        settings=node_params("filter"),
    threads: node_threads("filter")
    resources:
        **stage_resources("filter"),
    log:
        stage_log("filter"),
    benchmark:
        stage_benchmark("filter")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/filter.py"
