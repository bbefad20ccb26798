from pathlib import Path

from scoder.io import read_json
from scoder.smk import stage
from scoder.soda.report import tables_markdown

with stage(snakemake) as (inp, out, s):
    ablations = {name: read_json(path) for name, path in s["ablations"].items() if Path(path).exists()}
    Path(out[0]).write_text(tables_markdown(read_json(inp.results), ablations, s["labels"]), encoding="utf-8")
