# Synthesizer training: iteration 0 on D_p (the enhanced synthesizer), iteration
# i on the data selected in iteration i.  The M checkpoints (evenly spaced over
# training) are separate outputs, each consumed by its own sampling job.  A rule
# declares a fixed number of outputs, so there is one rule per M in the config,
# each limited to the synthesizer folders trained with that M.
for M, keys in PLAN.checkpoint_groups().items():

    rule:
        name:
            f"synthesizer_m{M}"
        input:
            unpack(node_inputs("synthesizer")),
        output:
            **{f"ckpt{m}": directory(P.pattern("synthesizer", "checkpoint").replace("{m}", str(m)))
               for m in range(1, M + 1)},
            log=P.pattern("synthesizer", "log"),
        wildcard_constraints:
            key="|".join(keys),
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
