"""Projected LoRA gradients of D_p or of one iteration's candidates, per reference checkpoint."""
import os
import shutil

from scoder.data import to_chat
from scoder.influence import gradients_stage
from scoder.io import read_jsonl
from scoder.ledger import progress_path
from scoder.smk import device, stage

with stage(snakemake) as (inp, out, s):
    records = [to_chat(r, "instruction") for r in read_jsonl(inp.data)]
    # shards accumulate outside the declared output, which Snakemake deletes when a job fails
    progress = progress_path(out.features)
    # candidates under the structured projection use the Kronecker factors fit on D_p
    gradients_stage(reference=inp.adapter, records=records, out_dir=str(progress), train_log=inp.get("log"),
                    factors_from=inp.get("factors"), **s, **device(snakemake).model_settings())
    shutil.copytree(progress, out.features, dirs_exist_ok=True, copy_function=os.link)
