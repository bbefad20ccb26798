from pathlib import Path

from scoder.io import read_json
from scoder.report import tables_markdown
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    variants = {name: (v["table"], read_json(v["file"])) for name, v in s["variants"].items()
                if Path(v["file"]).exists()}
    text = tables_markdown(read_json(inp.results), [read_json(p) for p in inp.probes], variants, s["labels"],
                           s["main"])
    Path(out[0]).write_text(text, encoding="utf-8")
