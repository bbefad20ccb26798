"""SODA's training rules (soda_sft, soda_dpo, soda_scorer) share this script; the plan names the role."""
import shutil

from scoder.io import read_jsonl, write_json
from scoder.ledger import progress_dir
from scoder.smk import device, stage
from scoder.soda.feedback import scorer_examples
from scoder.training.launch import publish, train_model

with stage(snakemake) as (inp, out, s):
    role = s["role"]
    if role == "scorer":
        records = scorer_examples(read_jsonl(inp.data))
    else:
        records = [r for path in inp.data for r in read_jsonl(path)]
    progress = progress_dir(out.log)
    if role == "dpo" and not records:
        # no question of the 20% has a parsed faulty solution (only in tiny runs): the
        # student stays the SFT model, and the log says so
        publish(s["model"], out.model)
        write_json(out.log, {"skipped": "no fault-aware pairs", "loss_history": []})
    else:
        train_model("dpo" if role == "dpo" else "sft", records, init=s["model"], out_dir=out.model,
                    progress=progress, train=s["train"], beta=s.get("beta"),
                    gpus=device(snakemake).gpus, device=device(snakemake).train_settings())
        shutil.copyfile(progress / "train" / "train_log.json", out.log)
