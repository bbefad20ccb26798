# D_p: the teacher (GPT-4o in the paper) answers the synthesis prompt for every
# seed snippet with a problem and a solution.
rule teacher:
    input:
        unpack(node_inputs("teacher")),
    output:
        samples=P.pattern("teacher", "samples"),
        stats=P.pattern("teacher", "stats"),
    params:
        settings=node_params("teacher"),
    threads: node_threads("teacher")
    resources:
        **stage_resources("teacher"),
    log:
        stage_log("teacher"),
    benchmark:
        stage_benchmark("teacher")
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/teacher.py"
