"""The SCoder method as a DAG of files: which stage instances a run needs.

Every stage instance ("node") writes into ``work/<stage>/<key>/`` where ``key``
is a digest of the stage's settings and of its input paths (which carry their
own keys).  So two runs that agree on everything upstream of a stage share its
files, and editing one setting changes the keys of exactly that stage and its
descendants: only they rerun.  The Snakemake rules look nodes up by
``(stage, key)`` to find their inputs and params.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

WORK = "work"
EMBEDDED_MODELS = {"embedded:smollm2": f"{WORK}/models/smollm2-135m-instruct"}

# The files each stage writes into its folder (declared once, used by rules and plan).
FILES = {
    "extract": {"functions": "functions.jsonl", "stats": "stats.json"},
    "dedup": {"pool": "pool.jsonl", "dropped": "dropped.jsonl", "stats": "stats.json"},
    "filter": {"pool": "pool.jsonl", "stats": "stats.json"},
    "quality": {"pool": "pool.jsonl", "labelled": "labelled.jsonl", "stats": "stats.json"},
    "decontaminate": {"pool": "pool.jsonl", "matches": "matches.jsonl", "stats": "stats.json"},
    "categorize": {"pool": "pool.jsonl", "stats": "stats.json"},
    "seed": {"seeds": "seeds.jsonl", "supply": "supply.jsonl", "stats": "stats.json"},
    "teacher": {"samples": "dp.jsonl", "stats": "stats.json"},
    "synthesizer": {"checkpoints": "checkpoints", "log": "train_log.json"},
    "sample": {"samples": "ckpt{m}.jsonl"},
    "score": {"scored": "scored.jsonl", "stats": "stats.json"},
    "best": {"candidates": "best.jsonl", "stats": "stats.json"},
    "reference": {"adapter": "adapter", "log": "train_log.json"},
    "gradients": {"features": "features"},
    "select": {"selected": "selected.jsonl", "stats": "stats.json"},
    "synthesize": {"samples": "synthesized.jsonl", "stats": "stats.json"},
    "standin": {"data": "data.jsonl", "stats": "stats.json"},
    "target": {"model": "model", "log": "train_log.json"},
    "evaluate": {"humaneval": "humaneval.json", "completions": "completions.jsonl"},
}


def pattern(stage: str, name: str) -> str:
    """Snakemake output pattern of one of a stage's files (wildcard ``{key}``)."""
    return f"{WORK}/{stage}/{{key}}/{FILES[stage][name]}"


def stage_dir_pattern(stage: str) -> str:
    return f"{WORK}/{stage}/{{key}}"


@dataclass
class Node:
    """One stage instance: its key, the files it reads, the settings it runs with."""
    stage: str
    key: str
    inputs: dict
    params: dict
    resources: str = "cpu"
    runs: list = field(default_factory=list)

    def path(self, name: str, **fmt) -> str:
        return f"{WORK}/{self.stage}/{self.key}/{FILES[self.stage][name].format(**fmt)}"

    @property
    def dir(self) -> str:
        return f"{WORK}/{self.stage}/{self.key}"


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


class Plan:
    """All nodes of all configured runs, deduplicated by key."""

    def __init__(self, runs: dict[str, dict]):
        self.nodes: dict[str, dict[str, Node]] = {}
        self.runs: dict[str, dict] = {}
        for name, settings in runs.items():
            self.runs[name] = _RunBuilder(self, name, settings).build()

    def add(self, stage: str, inputs: dict, params: dict, resources: str, run: str) -> Node:
        key = digest([stage, inputs, params])
        node = self.nodes.setdefault(stage, {}).get(key)
        if node is None:
            node = Node(stage, key, inputs, params, resources)
            self.nodes[stage][key] = node
        if run not in node.runs:
            node.runs.append(run)
        return node

    def node(self, stage: str, key: str) -> Node:
        try:
            return self.nodes[stage][key]
        except KeyError:
            raise KeyError(f"{WORK}/{stage}/{key} belongs to no configured run: its settings are no "
                           f"longer in config/config.yaml (ask for results/scoder_<run>.json instead)") from None


def model_path(name: str) -> str:
    """Where a configured model is read from: embedded models come from a rule."""
    return EMBEDDED_MODELS.get(name, name)


def model_inputs(name: str) -> dict:
    """Snakemake inputs for a model: only embedded models are files of the workflow."""
    return {"model": EMBEDDED_MODELS[name]} if name in EMBEDDED_MODELS else {}


def backend_spec(backend: dict, model: str) -> dict:
    return {**backend, "model": model_path(model)}


class _RunBuilder:
    """Lays out one run's nodes in the order of the method."""

    def __init__(self, plan: Plan, name: str, settings: dict):
        self.plan, self.name, self.s = plan, name, settings

    def add(self, stage, inputs, params, resources="cpu"):
        return self.plan.add(stage, inputs, params, resources, self.name)

    def build(self) -> dict:
        s = self.s
        pool = self.snippet_pool()
        seed = pool["seed"]
        dp = self.add("teacher", {"snippets": seed.path("seeds"), **model_inputs(s["models"]["teacher"])},
                      {"generator": backend_spec(s["backends"]["teacher"], s["models"]["teacher"]),
                       "model_name": s["models"]["teacher"], "sampling": s["teacher"].get("sampling", {}),
                       "protocol": s["teacher"].get("protocol", "single")},
                      "generate")
        reference = self.add("reference", {"data": [dp.path("samples")], **model_inputs(s["models"]["reference"])},
                             {"model": model_path(s["models"]["reference"]), "format": "instruction",
                              "lora": s["reference"]["lora"], "train": s["reference"]["train"]}, "train")
        dp_features = self.gradients(dp.path("samples"), reference)
        synthesizer = self.synthesizer(model_path(s["models"]["synthesizer"]), [dp.path("samples")])
        iterations = [{"synthesizer": synthesizer}]
        offset = 0
        for i, it in enumerate(s["bootstrap"]["iterations"], start=1):
            step = self.iteration(i, it, offset, seed, synthesizer, reference, dp, dp_features)
            offset += it["snippets"]
            init = (model_path(s["models"]["synthesizer"]) if s["bootstrap"].get("init", "initial") == "initial"
                    else f"{synthesizer.path('checkpoints')}/ckpt{self.num_checkpoints}")
            data = [step["select"].path("selected")]
            if s["bootstrap"].get("data_mix", "selected") == "selected+dp":
                data.append(dp.path("samples"))
            synthesizer = self.synthesizer(init, data, previous=synthesizer if init.startswith(WORK) else None)
            step["synthesizer"] = synthesizer
            iterations.append(step)
        final = self.add("synthesize", {"snippets": seed.path("supply"),
                                        "checkpoints": synthesizer.path("checkpoints")},
                         {"generator": backend_spec(s["backends"]["sampling"], "synthesizer"),
                          "checkpoint": self.num_checkpoints, "start": offset, "count": s["final"]["size"],
                          "sampling": {**self.sampling, "n": 1},
                          "protocol": s["sampling"].get("protocol", "single")}, "generate")
        target = self.target(final, seed)
        evaluation = self.add("evaluate", {"model": target.path("model")},
                              {"generator": backend_spec(s["backends"]["evaluation"], "target"),
                               "humaneval": s["evaluation"].get("humaneval", {})}, "generate")
        return {"settings": s, "pool": pool, "teacher": dp, "reference": reference, "dp_features": dp_features,
                "iterations": iterations, "final": final, "target": target, "evaluate": evaluation}

    @property
    def num_checkpoints(self) -> int:
        return self.s["synthesizer"]["checkpoints"]

    @property
    def sampling(self) -> dict:
        keys = ("temperature", "top_p", "max_new_tokens", "seed")
        return {k: self.s["sampling"][k] for k in keys if k in self.s["sampling"]}

    def snippet_pool(self) -> dict:
        p, m = self.s["pool"], self.s["models"]
        extract = self.add("extract", {}, {"sources": p["sources"], "limit": p.get("limit"),
                                           "seed": p["seed"].get("seed", 0)})
        dedup = self.add("dedup", {"functions": extract.path("functions")}, p["dedup"])
        filt = self.add("filter", {"pool": dedup.path("pool")}, p["filter"])
        quality = self.add("quality", {"pool": filt.path("pool"), **model_inputs(m["quality"])},
                           {"generator": backend_spec(self.s["backends"]["quality"], m["quality"]), **p["quality"]},
                           "generate")
        decon = self.add("decontaminate", {"pool": quality.path("pool")}, p["decontaminate"])
        embedder = "minilm" if m["embedder"] == "embedded:minilm" else m["embedder"]
        categorize = self.add("categorize", {"pool": decon.path("pool")}, {"embedder": embedder, **p["categorize"]})
        seed = self.add("seed", {"pool": categorize.path("pool")}, p["seed"])
        return {"extract": extract, "dedup": dedup, "filter": filt, "quality": quality,
                "decontaminate": decon, "categorize": categorize, "seed": seed}

    def synthesizer(self, init: str, data: list[str], previous: Node | None = None) -> Node:
        inputs = {"data": data}
        if previous is not None:
            inputs["init"] = previous.path("checkpoints")
        else:
            inputs.update(model_inputs(self.s["models"]["synthesizer"]))
        return self.add("synthesizer", inputs,
                        {"model": init, "format": "synthesis", "checkpoints": self.num_checkpoints,
                         "train": self.s["synthesizer"]["train"]}, "train")

    def gradients(self, data: str, reference: Node) -> Node:
        inf = self.s["influence"]
        return self.add("gradients", {"data": data, "adapter": reference.path("adapter"),
                                      **model_inputs(self.s["models"]["reference"])},
                        {"model": model_path(self.s["models"]["reference"]),
                         **{k: inf[k] for k in ("k", "seed", "batch_size", "max_length") if k in inf}},
                        "gradients")

    def iteration(self, i, it, offset, seed, synthesizer, reference, dp, dp_features) -> dict:
        s = self.s
        multi = s["sampling"].get("multi_checkpoint", True)
        n = s["sampling"].get("n", 1)
        # Without multi-checkpoint sampling the same M*N samples come from the last checkpoint.
        checkpoints = list(range(1, self.num_checkpoints + 1)) if multi else [self.num_checkpoints]
        sample = self.add("sample", {"snippets": seed.path("supply"),
                                     "checkpoints": synthesizer.path("checkpoints")},
                          {"generator": backend_spec(s["backends"]["sampling"], "synthesizer"),
                           "iteration": i, "start": offset, "count": it["snippets"], "checkpoint_list": checkpoints,
                           "sampling": {**self.sampling, "n": n if multi else n * self.num_checkpoints},
                           "protocol": s["sampling"].get("protocol", "single")},
                          "generate")
        sample_files = [sample.path("samples", m=m) for m in checkpoints]
        score = self.add("score", {"samples": sample_files, **model_inputs(s["models"]["scorer"])},
                         {"generator": backend_spec(s["backends"]["scoring"], s["models"]["scorer"]),
                          "aspects": s["scorer"]["aspects"], "mode": s["scorer"].get("mode", "generate"),
                          "max_new_tokens": s["scorer"].get("max_new_tokens", 160)},
                         "generate")
        best = self.add("best", {"scored": score.path("scored")},
                        {"selector": s["scorer"]["selector"], "weights": s["scorer"]["weights"],
                         "aspects": list(s["scorer"]["aspects"])})
        use_influence = s["influence"].get("enabled", True)
        inputs = {"candidates": best.path("candidates")}
        if use_influence:
            inputs["features"] = self.gradients(best.path("candidates"), reference).path("features")
            inputs["reference_features"] = dp_features.path("features")
        select = self.add("select", inputs, {"k": it["select"], "by": "influence" if use_influence else "score"})
        return {"sample": sample, "sample_files": sample_files, "score": score, "best": best, "select": select}

    def target(self, final: Node, seed: Node) -> Node:
        s, t = self.s, self.s["target"]
        data = t["phase1"]["data"]
        if data.startswith("standin:"):
            standin = self.add("standin", {"snippets": seed.path("supply")},
                               {"kind": data.split(":", 1)[1], "size": t["phase1"].get("size")})
            phase1_inputs, phase1_data = {"data": [standin.path("data")]}, None
        else:
            phase1_inputs, phase1_data = {"data": []}, data
        phase1 = self.add("target", {**phase1_inputs, **model_inputs(s["models"]["target"])},
                          {"model": model_path(s["models"]["target"]), "phase": 1, "format": "instruction",
                           "external_data": phase1_data, "size": t["phase1"].get("size"),
                           "train": t["phase1"]["train"]}, "train")
        return self.add("target", {"data": [final.path("samples")], "init": phase1.path("model")},
                        {"model": phase1.path("model"), "phase": 2, "format": "instruction",
                         "external_data": None, "size": None, "train": t["phase2"]["train"]}, "train")


def run_nodes(run: dict) -> list[Node]:
    """Every node of a run, in the order of the method."""
    nodes = list(run["pool"].values()) + [run["teacher"], run["reference"], run["dp_features"]]
    for step in run["iterations"]:
        nodes += [step[k] for k in ("sample", "score", "best", "select", "synthesizer") if k in step]
    nodes += [run["final"], run["target"], run["evaluate"]]
    seen, out = set(), []
    for node in nodes:
        if (node.stage, node.key) not in seen:
            seen.add((node.stage, node.key))
            out.append(node)
    return out


def report_files(run: dict) -> dict[str, str]:
    """Named files the run's results are assembled from."""
    files = {}
    for name, node in run["pool"].items():
        files[f"{name}_stats"] = node.path("stats")
    files["teacher_stats"] = run["teacher"].path("stats")
    files["evaluation"] = run["evaluate"].path("humaneval")
    for i, step in enumerate(run["iterations"]):
        files[f"iter{i}_train_log"] = step["synthesizer"].path("log")
        if i:
            files[f"iter{i}_score_stats"] = step["score"].path("stats")
            files[f"iter{i}_best_stats"] = step["best"].path("stats")
            files[f"iter{i}_select_stats"] = step["select"].path("stats")
    files["final_stats"] = run["final"].path("stats")
    files["target_log"] = run["target"].path("log")
    return files
