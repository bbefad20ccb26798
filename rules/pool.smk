# results/pool_<run>.jsonl: the run's final snippet pool (categorized, decontaminated, each
# snippet with its role: seed or supply), and beside it results/pool_<run>.json: the count at
# every pool stage, skips and drops by reason, the skip logs.  It builds the pool stages only.
rule pool:
    input:
        unpack(pool_inputs),
    output:
        pool="results/pool_{run}.jsonl",
        counts="results/pool_{run}.json",
    params:
        settings=pool_params,
    log:
        "logs/pool_{run}.log",
    benchmark:
        "logs/pool_{run}.benchmark.tsv"
    conda:
        "../envs/core.yaml"
    script:
        "../scripts/pool.py"
