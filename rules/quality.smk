# Quality evaluation: an LLM classifier (StarCoder2-15B in the paper) says yes/no
# on documentation and code quality.
rule quality:
    input:
        unpack(node_inputs("quality")),
    output:
        pool=P.pattern("quality", "pool"),
        labelled=P.pattern("quality", "labelled"),
        stats=P.pattern("quality", "stats"),
    params:
        settings=node_params("quality"),
    threads: node_threads("quality")
    resources:
        **stage_resources("quality"),
    log:
        stage_log("quality"),
    benchmark:
        stage_benchmark("quality")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/quality.py"
