"""Training rules (synthesizer, scorer, reference, target) share this script; the plan names the role."""
import shutil

from scoder.data import load_training_samples
from scoder.influence.checkpoints import reference_checkpoint_dirs
from scoder.io import read_jsonl
from scoder.ledger import progress_dir
from scoder.scoring import scoring_example
from scoder.smk import device, stage
from scoder.training.launch import train_stage

with stage(snakemake) as (inp, out, s):
    role = s["role"]
    if role == "scorer":  # the scoring prompt answered with the teacher's scores
        scored = [r for path in inp.data for r in read_jsonl(path)]
        samples = [ex for ex in (scoring_example(r, s["aspects"]) for r in scored) if ex is not None]
        print(f"scorer: {len(samples)} of {len(scored)} teacher-scored samples fully parsed", flush=True)
    else:
        samples = load_training_samples(list(inp.data), s.get("external_data"), s.get("size"))
    if role == "synthesizer":  # the M checkpoints are separate outputs
        outputs = [getattr(out, f"ckpt{m}") for m in range(1, s["checkpoints"] + 1)]
    elif role == "reference":
        outputs = reference_checkpoint_dirs(out.adapter, s["checkpoints"])
    else:
        outputs = [out.model]
    progress = progress_dir(out.log)
    # the reference keeps each checkpoint's Adam moments (2x the LoRA size) for influence.adam
    train_stage(samples, outputs, progress, model=s["model"], format=s["format"], train=s["train"],
                lora=s.get("lora"), save_adam_moments=role == "reference",
                gpus=device(snakemake).gpus, device=device(snakemake).train_settings())
    shutil.copyfile(progress / "train" / "train_log.json", out.log)
