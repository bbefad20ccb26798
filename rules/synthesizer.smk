# Synthesizer training: iteration 0 on D_p (the enhanced synthesizer), iteration
# i on the data selected in iteration i; M checkpoints kept for sampling.
rule synthesizer:
    input:
        unpack(node_inputs("synthesizer")),
    output:
        checkpoints=directory(P.pattern("synthesizer", "checkpoints")),
        log=P.pattern("synthesizer", "log"),
    params:
        settings=node_params("synthesizer"),
    threads: node_threads("synthesizer")
    resources:
        **stage_resources("synthesizer"),
    log:
        stage_log("synthesizer"),
    benchmark:
        stage_benchmark("synthesizer")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train.py"
