# Seed snippets, stratified per category; the rest is the bootstrap supply.
rule seed:
    input:
        unpack(node_inputs("seed")),
    output:
        seeds=P.pattern("seed", "seeds"),
        supply=P.pattern("seed", "supply"),
        stats=P.pattern("seed", "stats"),
    params:
        settings=node_params("seed"),
    threads: node_threads("seed")
    resources:
        **stage_resources("seed"),
    log:
        stage_log("seed"),
    benchmark:
        stage_benchmark("seed")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/seed.py"
