"""Where the embedded default's time goes: every stage of a finished tiny run, and each
LLM stage against its floor.

1. The run: each stage's jobs, wall and CPU seconds summed from the ``benchmark*.tsv``
   Snakemake wrote in ``work/<stage>/<key>/`` (run ``snakemake --cores 2`` first; the
   figures are that run's, load included).
2. The LLM stages (quality, teacher, sample, score, synthesize, evaluate): each job's
   script runs again here, in this process, on the run's real input files (outputs go
   to a temporary folder), while every forward pass of the model is recorded; then the
   same forward passes run bare, back to back: the *floor*, what the stage cannot do
   without at its batch size (the prefill and one pass per generated token of each
   generation batch; for scoring, each shared prompt prefix once and the rest of every
   prompt).  measured / floor is the stage's overhead: model loading, tokenizing,
   sampling, the sandbox (EvalPlus) and so on; both run in one process one after the
   other, so the ratio holds up under load better than either figure.  The run's own
   figure (Snakemake's, with the job's Python start-up) is set against the same floor.
3. ``--check``: the scoring paths against the plain one on SmolLM2 and real inputs: the
   key/value-cache reuse gives the same probabilities (max difference printed), and its
   time per function against one left-padded batched pass per prompt (how quality was
   scored before).

    python bench/tiny.py [--stages quality,score] [--jobs 1] [--check] [--out tiny_bench.json]

Wall and CPU (user + system) seconds are printed side by side with the load average:
on a shared machine, wall time drifts with the load, CPU time much less.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import runpy
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from measure import cpu_seconds  # noqa: E402 (bench/measure.py)

LLM_STAGES = ("quality", "teacher", "sample", "score", "synthesize", "evaluate")
SCRIPTS = {"quality": "quality", "teacher": "teacher", "sample": "sample", "score": "score",
           "synthesize": "synthesize", "evaluate": "evaluate"}


@contextmanager
def timer(into: dict, key: str):
    t, c = time.perf_counter(), cpu_seconds()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - t
        into[key + "_cpu"] = into.get(key + "_cpu", 0.0) + cpu_seconds() - c


def tiny_nodes(run: str) -> dict[str, list]:
    """The run's stage instances, by stage, in the plan's order."""
    import yaml

    from scoder.config import validate
    from scoder.plan import Plan

    with open(ROOT / "config/config.yaml", encoding="utf-8") as f:
        plan = Plan(validate(yaml.safe_load(f)))
    return {stage: [n for n in nodes.values() if run in n.runs] for stage, nodes in plan.nodes.items()}


# ------------------------------------------------------------------ 1. the run's own figures

def run_table(nodes: dict[str, list]) -> dict:
    """Per stage: jobs, wall and CPU seconds from the run's benchmark files."""
    table = {}
    rows = [("models", [ROOT / "work/models/convert_smollm2.benchmark.tsv"])]
    rows += [(stage, [p for n in ns for p in sorted((ROOT / n.dir).glob("benchmark*.tsv"))])
             for stage, ns in nodes.items()]
    for stage, files in rows:
        files = [f for f in files if f.exists()]
        if not files:
            continue
        entry = table.setdefault(stage, {"jobs": 0, "wall": 0.0, "cpu": 0.0, "per_job": {}})
        for f in files:
            with open(f, newline="") as fh:
                row = list(csv.DictReader(fh, delimiter="\t"))[-1]
            wall, cpu = float(row["s"]), float(row.get("cpu_time") or 0)
            entry["jobs"] += 1
            entry["wall"] += wall
            entry["cpu"] += cpu
            entry["per_job"][str(f.relative_to(ROOT))] = wall
    return table


def print_run_table(table: dict) -> None:
    print(f"\n{'stage':<16}{'jobs':>5}{'wall s':>10}{'cpu s':>10}   (the run's benchmark files)")
    for stage, e in sorted(table.items(), key=lambda kv: -kv[1]["wall"]):
        print(f"{stage:<16}{e['jobs']:>5}{e['wall']:>10.1f}{e['cpu']:>10.1f}")
    wall, cpu = sum(e["wall"] for e in table.values()), sum(e["cpu"] for e in table.values())
    print(f"{'all stages':<16}{sum(e['jobs'] for e in table.values()):>5}{wall:>10.1f}{cpu:>10.1f}"
          f"   = {wall / 60:.1f} min of jobs (one at a time at --cores 2: about the run's wall time)")


# ------------------------------------------------------------------ 2. LLM stages against their floor

class Recorder:
    """Records the shape of every forward pass of the models a stage loads (batch, new
    tokens, cached tokens) and the time spent loading and inside the generator's calls."""

    def __init__(self):
        self.calls: list[tuple[int, int, int]] = []
        self.lm = None
        self.handles: list = []
        self.times: dict = {}

    def install(self):
        from scoder.llm import transformers_backend as tb

        recorder, cls = self, tb.TransformersGenerator
        originals = {name: getattr(cls, name) for name in
                     ("__init__", "generate", "complete", "score_choices", "score_continuations")}

        def init(gen, *args, **kwargs):
            with timer(recorder.times, "load"):
                originals["__init__"](gen, *args, **kwargs)
            recorder.lm = gen.lm
            recorder.handles.append(gen.lm.register_forward_pre_hook(recorder.hook, with_kwargs=True))

        def timed(name):
            def call(gen, *args, **kwargs):
                with timer(recorder.times, "llm"):
                    return originals[name](gen, *args, **kwargs)
            return call

        cls.__init__ = init
        for name in originals:
            if name != "__init__":
                setattr(cls, name, timed(name))

        def uninstall():
            for name, fn in originals.items():
                setattr(cls, name, fn)
            for handle in recorder.handles:  # the floor's own passes are not the stage's
                handle.remove()
        return uninstall

    def hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        past = kwargs.get("past_key_values")
        self.calls.append((int(ids.shape[0]), int(ids.shape[1]), int(past.get_seq_length()) if past is not None else 0))


def replay(lm, calls: list[tuple[int, int, int]]) -> dict:
    """The recorded forward passes run bare (random tokens of the same shapes, a key/value
    cache of the same length); building a cache that the recorded stage had already is
    not timed.  Returns wall and CPU seconds."""
    import torch
    from transformers import DynamicCache

    vocab = lm.config.vocab_size
    out = {"wall": 0.0, "cpu": 0.0}
    cache, shape = None, (0, 0)  # the cache and its (batch, length) after the last pass
    with torch.no_grad():
        for batch, new, past in calls:
            if past == 0:
                cache = DynamicCache()
            elif shape != (batch, past):
                if shape != (1, past):  # the stage reused a prefix: rebuild it, untimed
                    cache = DynamicCache()
                    lm(input_ids=torch.randint(vocab, (1, past)), past_key_values=cache, use_cache=True,
                       logits_to_keep=1)
                cache = copy.deepcopy(cache)
                cache.batch_repeat_interleave(batch)
            ids = torch.randint(vocab, (batch, new))
            t, c = time.perf_counter(), cpu_seconds()
            lm(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            out["wall"] += time.perf_counter() - t
            out["cpu"] += cpu_seconds() - c
            shape = (batch, past + new)
    return out


class Files(dict):
    """Snakemake's named input/output lists, as far as the scripts use them."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def jobs_of(node) -> list[dict]:
    """The wildcards of each job of a node (sampling: one job per checkpoint)."""
    if node.stage == "sample":
        return [{"m": str(m)} for m in node.params["checkpoint_list"]]
    return [{}]


def run_job(node, wildcards: dict, out_dir: Path, threads: int) -> tuple[dict, Recorder]:
    """One job's script in this process on the run's inputs; (times, recorder)."""
    inputs = node.job_inputs(**wildcards)
    missing = [p for v in inputs.values() for p in ([v] if isinstance(v, str) else v) if not (ROOT / p).exists()]
    if missing:
        raise FileNotFoundError(f"{node.dir}: inputs missing ({', '.join(missing[:3])}): run the workflow first")
    outputs = Files({name: str(out_dir / node.stage / node.key / pattern.format(**wildcards))
                     for name, pattern in node.files.items()})
    Path(next(iter(outputs.values()))).parent.mkdir(parents=True, exist_ok=True)
    # resources: none, i.e. the device defaults (dtype and attention "auto", no checkpointing), tiny's own
    fake = SimpleNamespace(input=Files(inputs), output=outputs, params={"settings": node.settings(**wildcards)},
                           threads=threads, log=[], resources=Files(),
                           wildcards=SimpleNamespace(key=node.key, **wildcards))
    recorder = Recorder()
    uninstall = recorder.install()
    times: dict = {}
    try:
        with timer(times, "stage"):
            runpy.run_path(str(ROOT / "scripts" / f"{SCRIPTS[node.stage]}.py"), init_globals={"snakemake": fake})
    finally:
        uninstall()
    times.update(recorder.times)
    return times, recorder


def llm_profile(nodes: dict[str, list], stages: list[str], max_jobs: int | None, table: dict,
                threads: int) -> dict:
    report = {}
    with tempfile.TemporaryDirectory(prefix="tiny_bench_") as tmp:
        for stage in stages:
            entry = report.setdefault(stage, {"jobs": 0, "stage": 0.0, "stage_cpu": 0.0, "floor": 0.0,
                                              "floor_cpu": 0.0, "llm": 0.0, "load": 0.0, "forwards": 0,
                                              "run_wall": 0.0})
            done = 0
            for node in nodes.get(stage, []):
                for wildcards in jobs_of(node):
                    if max_jobs is not None and done >= max_jobs:
                        break
                    # the job's threads: tiny's `cpus` (the script sets torch to them)
                    times, recorder = run_job(node, wildcards, Path(tmp), threads=threads)
                    floor = replay(recorder.lm, recorder.calls) if recorder.lm is not None else {"wall": 0, "cpu": 0}
                    done += 1
                    entry["jobs"] += 1
                    entry["stage"] += times["stage"]
                    entry["stage_cpu"] += times["stage_cpu"]
                    entry["llm"] += times.get("llm", 0.0)
                    entry["load"] += times.get("load", 0.0)
                    entry["floor"] += floor["wall"]
                    entry["floor_cpu"] += floor["cpu"]
                    entry["forwards"] += len(recorder.calls)
                    name = f"{node.dir}/benchmark{'_ckpt' + wildcards['m'] if 'm' in wildcards else ''}.tsv"
                    bench = table.get(stage, {}).get("per_job", {}).get(name)
                    entry["run_wall"] += bench if bench is not None else float("nan")
                    print(f"  {stage} {node.key} {wildcards or ''}: {times['stage']:.1f} s "
                          f"({times['stage_cpu']:.1f} cpu), floor {floor['wall']:.1f} s "
                          f"({len(recorder.calls)} forward passes)", flush=True)
    return report


def print_llm_table(report: dict) -> None:
    print(f"\n{'LLM stage':<12}{'jobs':>5}{'run s':>9}{'here s':>9}{'cpu s':>9}{'floor s':>9}{'cpu s':>8}"
          f"{'run/floor':>11}{'here/floor':>11}{'  in generator / loading':>26}")
    for stage, e in report.items():
        if not e["jobs"]:
            continue
        floor = e["floor"] or float("nan")
        print(f"{stage:<12}{e['jobs']:>5}{e['run_wall']:>9.1f}{e['stage']:>9.1f}{e['stage_cpu']:>9.1f}"
              f"{e['floor']:>9.1f}{e['floor_cpu']:>8.1f}{e['run_wall'] / floor:>11.2f}{e['stage'] / floor:>11.2f}"
              f"{e['llm']:>17.1f} / {e['load']:.1f}")
    print("run s: the run's benchmark files; here s: the same jobs rerun in this process; floor: their "
          "forward passes run bare; 'in generator': time inside generate/score calls")


# ------------------------------------------------------------------ 3. the scoring paths, checked

def padded_logprobs(gen, conversations, choices):
    """How scoring worked before prefix reuse: one left-padded batched pass per prompt."""
    import torch

    from scoder.llm.base import chat_prompt, first_token_ids

    ids = first_token_ids(gen.tokenizer, choices)
    rows = []
    for start in range(0, len(conversations), gen.batch_size):
        enc = gen._encode([chat_prompt(gen.tokenizer, c) for c in conversations[start:start + gen.batch_size]])
        positions = (enc["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = gen.lm(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1, :]
        rows += [dict(zip(choices, r)) for r in torch.log_softmax(logits.float(), -1)[:, ids].tolist()]
    return rows


def check_scoring(nodes: dict[str, list], limit: int) -> dict:
    """KV-reuse scoring against the padded path on SmolLM2 and the run's inputs."""
    import torch

    from scoder.io import read_jsonl
    from scoder.llm import make_generator, normalize_choices
    from scoder.prompts import quality_messages
    from scoder.scoring import DEFAULT_ASPECTS, DIGITS, OVERALL, expected_digit, scoring_messages

    torch.set_num_threads(2)
    quality = nodes["quality"][0]
    settings = quality.settings()
    gen = make_generator(settings["generator"])
    records = read_jsonl(ROOT / quality.inputs["pool"])[:limit]
    report = {}
    for shots in sorted({settings.get("shots"), None}, key=lambda s: s or 99):
        convs = [quality_messages(r["code"], shots) for r in records]
        gen._last_root = ([], None)
        times: dict = {}
        with timer(times, "padded"):
            old = padded_logprobs(gen, convs, ["Yes", "No"])
        with timer(times, "reuse"):
            new = gen.score_choices(convs, ["Yes", "No"])
        diff = max(abs(normalize_choices(a)["Yes"] - normalize_choices(b)["Yes"]) for a, b in zip(old, new))
        name = f"quality ({shots or 'all'} shot{'s' if shots != 1 else ''})"
        report[name] = {"n": len(convs), "max_p_diff": diff, **times}
    samples = [r for r in read_jsonl(ROOT / nodes["teacher"][0].path("samples"))][:max(1, limit // 8)]
    targets = [*DEFAULT_ASPECTS, OVERALL]
    convs = [scoring_messages(s["problem"], s["solution"], DEFAULT_ASPECTS) + [{"role": "assistant",
                                                                                "content": f"{t}: "}]
             for s in samples for t in targets]
    times = {}
    with timer(times, "padded"):
        old = padded_logprobs(gen, convs, DIGITS)
    with timer(times, "reuse"):
        new = gen.score_choices(convs, DIGITS)
    diff = max(abs(expected_digit(a) - expected_digit(b)) for a, b in zip(old, new))
    report["score (logprob)"] = {"n": len(samples), "max_digit_diff": diff, **times}
    print(f"\n{'scoring path':<22}{'n':>4}{'padded s/item':>15}{'reuse s/item':>14}{'speed-up':>10}"
          f"{'max diff':>12}   (SmolLM2; wall, cpu in brackets)")
    for name, r in report.items():
        diff = r.get("max_p_diff", r.get("max_digit_diff"))
        print(f"{name:<22}{r['n']:>4}{r['padded'] / r['n']:>9.2f} ({r['padded_cpu'] / r['n']:.2f})"
              f"{r['reuse'] / r['n']:>8.2f} ({r['reuse_cpu'] / r['n']:.2f}){r['padded'] / r['reuse']:>9.1f}x"
              f"{diff:>12.1e}")
    print("max diff: of p(yes) (quality) or of the expected digit (score) between the two paths")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="tiny", help="the run whose stages to read (default: tiny)")
    ap.add_argument("--stages", default=",".join(LLM_STAGES),
                    help="LLM stages to profile against their floor (comma-separated; '' for none)")
    ap.add_argument("--jobs", type=int, default=None, help="at most this many jobs per LLM stage")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each job (tiny's cpus: 2)")
    ap.add_argument("--check", action="store_true", help="also check the scoring paths on SmolLM2")
    ap.add_argument("--check-limit", type=int, default=32, help="functions in --check (default 32)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    os.chdir(ROOT)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    nodes = tiny_nodes(args.run)
    report = {"load_start": os.getloadavg(), "run": run_table(nodes)}
    if report["run"]:
        print_run_table(report["run"])
    else:
        print("no benchmark files under work/: run `snakemake --cores 2` first for the run's table")
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(LLM_STAGES))
    if unknown:
        raise SystemExit(f"--stages: {', '.join(unknown)} not among {', '.join(LLM_STAGES)}")
    if stages:
        report["llm"] = llm_profile(nodes, stages, args.jobs, report["run"], args.threads)
        print_llm_table(report["llm"])
    if args.check:
        report["check"] = check_scoring(nodes, args.check_limit)
    report["load_end"] = os.getloadavg()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
