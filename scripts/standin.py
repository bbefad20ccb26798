"""Stand-in phase-1 data for the target when evol-codealpaca-v1 is not available."""
from scoder.data import docstring_pairs
from scoder.io import read_jsonl, write_json, write_jsonl
from scoder.smk import stage

with stage(snakemake) as (inp, out, s):
    if s["kind"] != "docstring-pairs":
        raise ValueError(f"target.phase1.data: unknown stand-in 'standin:{s['kind']}' (use standin:docstring-pairs)")
    pairs = docstring_pairs(read_jsonl(inp.snippets), s["size"])
    write_jsonl(out.data, pairs)
    write_json(out.stats, {"stage": "standin", "settings": s, "out": len(pairs),
                           "note": "stand-in for evol-codealpaca-v1: docstring -> function pairs from the snippet supply"})
