import shutil
from pathlib import Path

from scoder.data import to_chat
from scoder.influence import projected_gradients
from scoder.io import read_jsonl
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    records = [to_chat(r, "instruction") for r in read_jsonl(inp.data)]
    progress = Path(out.features).parent / "progress" / "features"
    projected_gradients(s["model"], inp.adapter, records, str(progress), k=s["k"], seed=s["seed"],
                        batch_size=s["batch_size"], max_length=s["max_length"])
    shutil.copytree(progress, out.features, dirs_exist_ok=True)
