# Near-deduplication: MinHash + LSH at Jaccard 0.5 (datasketch).
rule dedup:
    input:
        unpack(node_inputs("dedup")),
    output:
        pool=P.pattern("dedup", "pool"),
        dropped=P.pattern("dedup", "dropped"),
        stats=P.pattern("dedup", "stats"),
    params:
        settings=node_params("dedup"),
    threads: node_threads("dedup")
    resources:
        **stage_resources("dedup"),
    log:
        stage_log("dedup"),
    benchmark:
        stage_benchmark("dedup")
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/dedup.py"
