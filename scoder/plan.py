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
    "extract": {"functions": "functions.jsonl", "skipped": "skipped.jsonl", "stats": "stats.json"},
    "dedup": {"pool": "pool.jsonl", "dropped": "dropped.jsonl", "stats": "stats.json"},
    "filter": {"pool": "pool.jsonl", "skipped": "skipped.jsonl", "stats": "stats.json"},
    "quality": {"pool": "pool.jsonl", "labelled": "labelled.jsonl", "stats": "stats.json"},
    "decontaminate": {"pool": "pool.jsonl", "matches": "matches.jsonl", "stats": "stats.json"},
    "categorize": {"pool": "pool.jsonl", "stats": "stats.json"},
    "seed": {"seeds": "seeds.jsonl", "supply": "supply.jsonl", "stats": "stats.json"},
    "teacher": {"samples": "dp.jsonl", "stats": "stats.json"},
    "synthesizer": {"checkpoint": "ckpt{m}", "log": "train_log.json"},
    "scorer_data": {"data": "data.jsonl", "stats": "stats.json"},
    "scorer": {"model": "model", "log": "train_log.json"},
    "mix": {"data": "data.jsonl", "stats": "stats.json"},
    "weights": {"weights": "weights.json"},
    "perplexity": {"perplexity": "perplexity.jsonl"},
    "sample": {"samples": "ckpt{m}.jsonl"},
    "score": {"scored": "scored.jsonl", "stats": "stats.json"},
    "best": {"candidates": "best.jsonl", "stats": "stats.json"},
    "reference": {"adapter": "adapter", "log": "train_log.json"},
    "gradients": {"features": "features"},
    "select": {"selected": "selected.jsonl", "stats": "stats.json"},
    "synthesize": {"samples": "synthesized.jsonl", "stats": "stats.json"},
    "standin": {"data": "data.jsonl", "stats": "stats.json"},
    "target": {"model": "model", "log": "train_log.json"},
    "evaluate": {"scores": "scores.json", "completions": "completions.jsonl"},
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
        self.nodes: dict[tuple, Node] = {}

    def add(self, stage, inputs, params, resources="cpu"):
        node = self.plan.add(stage, inputs, params, resources, self.name)
        self.nodes.setdefault((stage, node.key), node)
        return node

    def build(self) -> dict:
        s = self.s
        pool = self.snippet_pool()
        seed = pool["seed"]
        dp = self.add("teacher", {"snippets": seed.path("seeds"), **model_inputs(s["models"]["teacher"])},
                      {"generator": backend_spec(s["backends"]["teacher"], s["models"]["teacher"]),
                       "model_name": s["models"]["teacher"], "sampling": s["teacher"].get("sampling", {}),
                       "protocol": s["teacher"].get("protocol", "single")},
                      "generate")
        scorer = self.scorer(seed, dp)
        reference = self.add("reference", {"data": [dp.path("samples")], **model_inputs(s["models"]["reference"])},
                             {"model": model_path(s["models"]["reference"]), "format": "instruction",
                              "lora": s["reference"]["lora"], "train": s["reference"]["train"],
                              "checkpoints": s["reference"].get("checkpoints", 1)}, "train")
        dp_features = self.gradients(dp.path("samples"), reference)
        original = model_path(s["models"]["synthesizer"])
        synthesizer = self.synthesizer(original, [dp.path("samples")])
        iterations = [{"synthesizer": synthesizer}]
        offset = 0
        for i, it in enumerate(s["bootstrap"]["iterations"], start=1):
            step = self.iteration(i, it, offset, seed, synthesizer, reference, dp_features, scorer)
            offset += it["snippets"]
            init = original if s["bootstrap"].get("init", "initial") == "initial" else self.last_checkpoint(synthesizer)
            data = [step["select"].path("selected")]
            if s["bootstrap"].get("data_mix", "selected") == "selected+dp":
                data.append(dp.path("samples"))
            synthesizer = self.synthesizer(init, data, previous=synthesizer if init.startswith(WORK) else None)
            step["synthesizer"] = synthesizer
            iterations.append(step)
        final = self.synthesize(seed.path("supply"), self.last_checkpoint(synthesizer), offset, s["final"]["size"])
        target = self.target(final, seed)
        evaluation = self.evaluate(target, s["evaluation"])
        probes = {}
        for stage in s.get("probes", {}).get("stages", []):
            model = original if stage == "original" else self.last_checkpoint(iterations[stage]["synthesizer"])
            probes["original" if stage == "original" else f"iter{stage}"] = self.probe(seed, model, offset)
        return {"settings": s, "pool": pool, "teacher": dp, "scorer": scorer, "reference": reference,
                "dp_features": dp_features, "iterations": iterations, "final": final, "target": target,
                "evaluate": evaluation, "probes": probes, "nodes": list(self.nodes.values())}

    def last_checkpoint(self, synthesizer: Node) -> str:
        return synthesizer.path("checkpoint", m=self.num_checkpoints)

    def synthesize(self, snippets: str, model: str, start: int, count: int, n: int = 1) -> Node:
        """Synthesis samples from ``model`` over ``count`` snippets from ``start`` (final data, probes,
        the scorer's training data)."""
        s = self.s
        inputs = {"snippets": snippets, **({"model": model} if model.startswith(WORK) else model_inputs(model))}
        return self.add("synthesize", inputs,
                        {"generator": backend_spec(s["backends"]["sampling"], model), "start": start,
                         "count": count, "sampling": {**self.sampling, "n": n},
                         "protocol": s["sampling"].get("protocol", "single")}, "generate")

    def evaluate(self, target: Node, evaluation: dict) -> Node:
        return self.add("evaluate", {"model": target.path("model")},
                        {"generator": backend_spec(self.s["backends"]["evaluation"], target.path("model")),
                         **evaluation}, "generate")

    def finetune(self, data: list[str], model: str, train: dict, phase: str, external: str | None = None,
                 size: int | None = None) -> Node:
        """A fine-tuned target model (phase 1 and 2 of SCoder, probes, weight experiments)."""
        inputs = {"data": data, **({"init": model} if model.startswith(WORK) else model_inputs(model))}
        return self.add("target", inputs, {"model": model_path(model), "phase": phase, "format": "instruction",
                                           "external_data": external, "size": size, "train": train}, "train")

    def probe(self, seed: Node, model: str, offset: int) -> dict:
        """Table 2: the target base model fine-tuned on data from one stage's synthesizer, evaluated."""
        p = self.s["probes"]
        data = self.synthesize(seed.path("supply"), model, offset, p["size"])
        target = self.finetune([data.path("samples")], self.s["models"]["target"], p["train"], "probe")
        return {"synthesize": data, "target": target, "evaluate": self.evaluate(target, self.s["evaluation"])}

    def scorer(self, seed: Node, dp: Node) -> dict:
        """The multi-aspect scorer (Appendix C): its training data scored by the teacher, the
        fine-tuned scorer, and the aspect weights (uniform, fixed, or learned from K experiments)."""
        s, sc = self.s, self.s["scorer"]
        out: dict = {"model": None, "annotation": None, "weights": None}
        if not sc.get("enabled", True):
            return out
        learned = sc["weights"]["method"] == "learned"
        if sc.get("train") or learned:
            files, sources = [], []
            for source in sc["data"]["sources"]:
                name, path = source.get("model") or source["data"], None
                if "model" in source:
                    path = self.synthesize(seed.path("seeds"), model_path(source["model"]), 0,
                                           source["count"]).path("samples")
                elif source["data"] == "dp":
                    path = dp.path("samples")
                elif source["data"].startswith("standin:"):
                    path = self.standin(seed, source["data"], source["count"]).path("data")
                if path is not None:
                    files.append(path)
                sources.append({"name": name, "count": source["count"],
                                "file": len(files) - 1 if path is not None else None,
                                "data": None if path is not None else source["data"]})
            data = self.add("scorer_data", {"samples": files}, {"sources": sources, "seed": sc["data"].get("seed", 0)})
            out["annotation"] = self.add(
                "score", {"samples": [data.path("data")], **model_inputs(s["models"]["teacher"])},
                {"generator": backend_spec(s["backends"]["teacher"], s["models"]["teacher"]),
                 "aspects": sc["aspects"], "mode": sc["data"].get("mode", "generate"),
                 "max_new_tokens": sc.get("max_new_tokens", 160)}, "generate")
        if sc.get("train"):
            out["model"] = self.add("scorer", {"data": [out["annotation"].path("scored")],
                                               **model_inputs(s["models"]["scorer"])},
                                    {"model": model_path(s["models"]["scorer"]), "format": "scoring",
                                     "aspects": sc["aspects"], "train": sc["training"]}, "train")
        if learned:
            out["weights"] = self.weights(out["annotation"])
        return out

    def weights(self, annotation: Node) -> Node:
        """Eq. 2: K datasets of different quality mixes, each fine-tunes the target base model and
        is scored on a held-out benchmark; ridge regression of the scores on the mean aspect vectors."""
        w = self.s["scorer"]["weights"]
        aspects = list(self.s["scorer"]["aspects"])
        mixes, scores = [], []
        for j in range(w["experiments"]):
            mix = self.add("mix", {"scored": annotation.path("scored")},
                           {"experiment": j, "experiments": w["experiments"], "size": w["size"],
                            "seed": w.get("seed", 0), "aspects": aspects})
            target = self.finetune([mix.path("data")], self.s["models"]["target"], w["train"], "weights")
            mixes.append(mix.path("stats"))
            scores.append(self.evaluate(target, w["benchmark"]).path("scores"))
        return self.add("weights", {"mixes": mixes, "scores": scores},
                        {"aspects": aspects, "alpha": w["alpha"], "metric": w["metric"]})

    def standin(self, seed: Node, data: str, size: int | None) -> Node:
        return self.add("standin", {"snippets": seed.path("supply")}, {"kind": data.split(":", 1)[1], "size": size})

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
        # embeddings of the whole pool: a GPU job on the cluster (instructor-large)
        categorize = self.add("categorize", {"pool": decon.path("pool")}, {"embedder": embedder, **p["categorize"]},
                              "generate")
        seed = self.add("seed", {"pool": categorize.path("pool")}, p["seed"])
        return {"extract": extract, "dedup": dedup, "filter": filt, "quality": quality,
                "decontaminate": decon, "categorize": categorize, "seed": seed}

    def synthesizer(self, init: str, data: list[str], previous: Node | None = None) -> Node:
        inputs = {"data": data}
        if previous is not None:
            inputs["init"] = previous.path("checkpoint", m=self.num_checkpoints)
        else:
            inputs.update(model_inputs(self.s["models"]["synthesizer"]))
        return self.add("synthesizer", inputs,
                        {"model": init, "format": "synthesis", "checkpoints": self.num_checkpoints,
                         "train": self.s["synthesizer"]["train"]}, "train")

    def gradients(self, data: str, reference: Node, dp_features: Node | None = None) -> Node:
        """Projected gradients of ``data`` under every reference checkpoint (the training log gives
        LESS's checkpoint weights); LESS's Adam preconditioning, if on, is for the candidates only,
        not for D_p (the data the reference was trained on).  The structured projection's factors
        are fit on D_p: candidates (``dp_features`` given) read them from D_p's features."""
        inf = self.s["influence"]
        keys = ("k", "seed", "projection", "batch_size", "grad_batch_size", "max_length", "device")
        adam = inf.get("adam", False) and data not in reference.inputs["data"]
        structured = inf.get("projection") == "structured"
        inputs = {"data": data, "adapter": reference.path("adapter"), "log": reference.path("log"),
                  **model_inputs(self.s["models"]["reference"])}
        if structured and dp_features is not None:
            inputs["factors"] = dp_features.path("features")
        return self.add("gradients", inputs,
                        {"model": model_path(self.s["models"]["reference"]),
                         **{k: inf[k] for k in keys if k in inf}, **({"adam": True} if adam else {}),
                         **({"structured": inf.get("structured", {})} if structured else {})},
                        "gradients")

    def iteration(self, i, it, offset, seed, synthesizer, reference, dp_features, scorer) -> dict:
        """Sampling, scoring, best-of and influence run per shard of the iteration's snippets
        (``bootstrap.shards`` parallel jobs each); the top-K selection gathers all shards."""
        shards = self.s["bootstrap"].get("shards", 1)
        bounds = [it["snippets"] * p // shards for p in range(shards + 1)]
        parts = [self.shard(i, offset + lo, hi - lo, seed, synthesizer, reference, dp_features, scorer)
                 for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
        by = self.s["bootstrap"].get("selection", "influence")
        inputs = {"candidates": [p["best"].path("candidates") for p in parts]}
        if by == "influence":
            inputs["features"] = [p["gradients"].path("features") for p in parts]
            inputs["reference_features"] = dp_features.path("features")
        elif by in ("low_perplexity", "high_perplexity"):
            inputs["perplexity"] = [p["perplexity"].path("perplexity") for p in parts]
        select = self.add("select", inputs, {"k": it["select"], "by": by, "seed": self.s["bootstrap"].get("seed", 0)})
        return {"shards": parts, "select": select}

    def shard(self, i, start, count, seed, synthesizer, reference, dp_features, scorer) -> dict:
        s = self.s
        multi = s["sampling"].get("multi_checkpoint", True)
        n = s["sampling"].get("n", 1)
        # Without multi-checkpoint sampling the same M*N samples come from the last checkpoint.
        checkpoints = list(range(1, self.num_checkpoints + 1)) if multi else [self.num_checkpoints]
        # {m} is left for the sampling job: each job reads only its own checkpoint.
        sample = self.add("sample", {"snippets": seed.path("supply"),
                                     "checkpoint": synthesizer.path("checkpoint", m="{m}")},
                          {"generator": backend_spec(s["backends"]["sampling"], "synthesizer"),
                           "iteration": i, "start": start, "count": count, "checkpoint_list": checkpoints,
                           "sampling": {**self.sampling, "n": n if multi else n * self.num_checkpoints},
                           "protocol": s["sampling"].get("protocol", "single")},
                          "generate")
        sample_files = [sample.path("samples", m=m) for m in checkpoints]
        sc = s["scorer"]
        part = {"sample": sample, "sample_files": sample_files}
        if sc.get("enabled", True):
            model = scorer["model"]
            inputs = ({"scorer": model.path("model")} if model is not None else model_inputs(s["models"]["scorer"]))
            part["score"] = self.add(
                "score", {"samples": sample_files, **inputs},
                {"generator": backend_spec(s["backends"]["scoring"],
                                           model.path("model") if model is not None else s["models"]["scorer"]),
                 "aspects": sc["aspects"], "mode": sc.get("mode", "generate"),
                 "max_new_tokens": sc.get("max_new_tokens", 160)}, "generate")
            inputs = {"scored": part["score"].path("scored")}
            if scorer["weights"] is not None:
                inputs["weights"] = scorer["weights"].path("weights")
            part["best"] = self.add("best", inputs, {"selector": sc["selector"], "weights": sc["weights"],
                                                     "aspects": list(sc["aspects"])})
        else:  # Table 4 "w/o multi-aspect scoring": one random candidate per snippet (our reading)
            part["best"] = self.add("best", {"scored": sample_files}, {"selector": "random", "seed": sc.get("seed", 0)})
        by = s["bootstrap"].get("selection", "influence")
        if by == "influence":
            part["gradients"] = self.gradients(part["best"].path("candidates"), reference, dp_features)
        elif by in ("low_perplexity", "high_perplexity"):
            part["perplexity"] = self.perplexity(part["best"].path("candidates"), reference)
        return part

    def perplexity(self, data: str, reference: Node) -> Node:
        """Perplexity of each candidate's response under the reference model (Figure 4's
        perplexity selectors; which model the paper used is not stated)."""
        inf = self.s["influence"]
        return self.add("perplexity", {"data": data, "adapter": reference.path("adapter"),
                                       **model_inputs(self.s["models"]["reference"])},
                        {"model": model_path(self.s["models"]["reference"]),
                         "max_length": inf.get("max_length", 4096)}, "gradients")

    def target(self, final: Node, seed: Node) -> Node:
        t = self.s["target"]
        data = t["phase1"]["data"]
        if data.startswith("standin:"):
            phase1 = self.finetune([self.standin(seed, data, t["phase1"].get("size")).path("data")],
                                   self.s["models"]["target"], t["phase1"]["train"], "1")
        else:
            phase1 = self.finetune([], self.s["models"]["target"], t["phase1"]["train"], "1",
                                   external=data, size=t["phase1"].get("size"))
        return self.finetune([final.path("samples")], phase1.path("model"), t["phase2"]["train"], "2")


def run_nodes(run: dict) -> list[Node]:
    """Every node of a run, in the order the method lays them out."""
    return list(run["nodes"])


def report_files(run: dict) -> dict[str, str]:
    """Named files the run's results are assembled from."""
    files = {}
    for name, node in run["pool"].items():
        files[f"{name}_stats"] = node.path("stats")
    files["teacher_stats"] = run["teacher"].path("stats")
    files["evaluation"] = run["evaluate"].path("scores")
    for i, step in enumerate(run["iterations"]):
        files[f"iter{i}_train_log"] = step["synthesizer"].path("log")
        if i:
            for name in ("score", "best"):
                files[f"iter{i}_{name}_stats"] = [p[name].path("stats") for p in step["shards"] if name in p]
            files[f"iter{i}_select_stats"] = step["select"].path("stats")
    if run["scorer"]["annotation"] is not None:
        files["scorer_annotation_stats"] = run["scorer"]["annotation"].path("stats")
    if run["scorer"]["model"] is not None:
        files["scorer_log"] = run["scorer"]["model"].path("log")
    if run["scorer"]["weights"] is not None:
        files["weights"] = run["scorer"]["weights"].path("weights")
    files["final_stats"] = run["final"].path("stats")
    files["target_log"] = run["target"].path("log")
    return files


def probe_files(run: dict, probe: str) -> dict[str, str]:
    """Files of one per-iteration probe (Table 2)."""
    p = run["probes"][probe]
    return {"evaluation": p["evaluate"].path("scores"), "synthesize_stats": p["synthesize"].path("stats"),
            "target_log": p["target"].path("log")}
