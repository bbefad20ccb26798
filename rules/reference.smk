# The LoRA reference model (Llama3.1-8B-Base in the paper) trained on D_p.
rule reference:
    input:
        unpack(node_inputs("reference")),
    output:
        adapter=directory(P.pattern("reference", "adapter")),
        log=P.pattern("reference", "log"),
    params:
        settings=node_params("reference"),
    threads: node_threads("reference")
    resources:
        **stage_resources("reference"),
    log:
        stage_log("reference"),
    benchmark:
        stage_benchmark("reference")
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/train.py"
