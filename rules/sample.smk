# Multi-checkpoint sampling: N samples at temperature 0.2 from each of the M
# checkpoints of the previous iteration, one job per checkpoint.
rule sample:
    input:
        unpack(node_inputs("sample")),
    output:
        samples=P.pattern("sample", "samples"),
    params:
        settings=node_params("sample"),
    threads: node_threads("sample")
    resources:
        **stage_resources("sample"),
    log:
        stage_log("sample", "_ckpt{m}"),
    benchmark:
        stage_benchmark("sample", "_ckpt{m}")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/sample.py"
