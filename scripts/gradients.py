"""Projected LoRA gradients of D_p or of one iteration's candidates, per reference checkpoint."""
import os
import shutil
from pathlib import Path

from scoder.data import to_chat
from scoder.influence import gradients_stage
from scoder.io import read_jsonl
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = [to_chat(r, "instruction") for r in read_jsonl(inp.data)]
    # shards accumulate outside the declared output, which Snakemake deletes when a job fails
    progress = Path(out.features).parent / "progress" / "features"
    settings = {k: s[k] for k in ("k", "seed", "projection", "structured", "batch_size", "grad_batch_size",
                                  "max_length", "device") if k in s}
    # candidates under the structured projection use the Kronecker factors fit on D_p
    gradients_stage(s["model"], inp.adapter, records, str(progress), train_log=inp.get("log"),
                    adam=s.get("adam", False), factors_from=inp.get("factors"), **settings)
    shutil.copytree(progress, out.features, dirs_exist_ok=True, copy_function=os.link)
