"""Training rules (synthesizer, reference, target) share this script."""
import shutil
from pathlib import Path

from scoder.smk import stage
from scoder.steps import load_training_samples, train_stage

with stage(snakemake) as (inp, out, s):
    rule = snakemake.rule
    samples = load_training_samples(list(inp.data), s.get("external_data"), s.get("size"))
    gpus = int(snakemake.resources.get("gpu", 0))
    progress = Path(out.log).parent / "progress"
    if rule == "synthesizer":
        Path(out.checkpoints).mkdir(parents=True, exist_ok=True)
        targets = {m: f"{out.checkpoints}/ckpt{m}" for m in range(1, s["checkpoints"] + 1)}
        train_stage(samples, targets, progress, model=s["model"], format=s["format"], train=s["train"],
                    checkpoints=s["checkpoints"], gpus=gpus)
    elif rule == "reference":
        train_stage(samples, {1: out.adapter}, progress, model=s["model"], format=s["format"], train=s["train"],
                    lora=s["lora"], gpus=gpus)
    else:
        train_stage(samples, {1: out.model}, progress, model=s["model"], format=s["format"], train=s["train"], gpus=gpus)
    shutil.copyfile(progress / "train" / "train_log.json", out.log)
