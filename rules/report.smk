# results/scoder_<run>.json: benchmark numbers, counts at every stage, costs and
# provenance (SPEC.md section 5); results/scoder_<run>_iter<i>.json: the Table 2
# probe of stage i's synthesizer; results/scoder_<run>.md: the run's rows laid out
# as the paper's Table 3 (and Table 2 / Table 4 where probes or ablations exist).
rule report:
    input:
        unpack(report_inputs(PLAN)),
    output:
        result_file("{run}"),
    wildcard_constraints:
        run=RESULT_RUN,
    params:
        settings=report_params(PLAN, "scoder"),
    log:
        "logs/report_{run}.log",
    benchmark:
        "logs/report_{run}.benchmark.tsv"
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/report.py"


rule probe:
    input:
        unpack(probe_inputs),
    output:
        "results/scoder_{run}_{probe}.json",
    wildcard_constraints:
        probe="iter[0-9]+|original",
    params:
        settings=probe_params,
    log:
        "logs/probe_{run}_{probe}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/probe.py"


rule tables:
    input:
        unpack(table_inputs),
    output:
        "results/scoder_{run}.md",
    wildcard_constraints:
        run=RESULT_RUN,
    params:
        settings=table_params,
    log:
        "logs/tables_{run}.log",
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/tables.py"
