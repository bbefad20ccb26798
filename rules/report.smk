# results/scoder_<run>.json: benchmark numbers, counts at every stage, costs and
# provenance (SPEC.md section 5).
rule report:
    input:
        unpack(report_inputs),
    output:
        result_file("{run}"),
    params:
        settings=report_params,
    log:
        "logs/report_{run}.log",
    benchmark:
        "logs/report_{run}.benchmark.tsv"
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"
