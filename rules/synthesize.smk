# The final synthesized dataset (60K in the paper) from the bootstrapped synthesizer.
rule synthesize:
    input:
        unpack(node_inputs("synthesize")),
    output:
        samples=P.pattern("synthesize", "samples"),
        stats=P.pattern("synthesize", "stats"),
    params:
        settings=node_params("synthesize"),
    threads: node_threads("synthesize")
    resources:
        **stage_resources("synthesize"),
    log:
        stage_log("synthesize"),
    benchmark:
        stage_benchmark("synthesize")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/synthesize.py"
