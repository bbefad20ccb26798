"""The SCoder method as a DAG of files: which stage instances (nodes) each configured run needs.

Nodes are content-keyed (``scoder.dag``): each writes into
``work/<stage>/<key>/``, runs that agree upstream share it, and a setting
edited reaches exactly its stage and the stages after it (so does a file of a pool
source: extract's key digests what the sources' files are).  ``_RunBuilder``
lays out one run in the order of the Snakefile's sections, as a
``scoder.layout.Run`` (its pool, iterations, shards, probes...).  The rules
find a node by ``(stage, key)``; ``FILES`` names what each stage writes.

What a stage instance reads and runs with::

    python -m scoder.plan work/select/0123456789        # its runs, input files and settings
"""
from __future__ import annotations

import json
import sys

from scoder.benchmarks.texts import sources
from scoder.dag import DAG, WORK, Node, backend_spec, file_pattern, model_inputs, model_path
from scoder.hub import pin_models
from scoder.layout import Iteration, Pool, Probe, Run, Scorer, Shard
from scoder.pool.extract import source_fingerprint

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
    return file_pattern(FILES, stage, name)


class Plan(DAG):
    """All nodes of all configured runs (``runs:``), deduplicated by key."""

    files = FILES
    results = "results/scoder_{run}.json"

    def __init__(self, runs: dict[str, dict]):
        super().__init__()
        self.runs: dict[str, Run] = {}
        self.fingerprints: dict[str, str] = {}
        for name, settings in runs.items():
            self.runs[name] = _RunBuilder(self, name, settings).build()

    def source_fingerprint(self, source: dict) -> str:
        """What a pool source's files are (``scoder.pool.extract.source_fingerprint``), read once
        per plan: many runs share a source."""
        key = json.dumps(source, sort_keys=True)
        if key not in self.fingerprints:
            self.fingerprints[key] = source_fingerprint(source)
        return self.fingerprints[key]

    def checkpoint_groups(self) -> dict[int, list[str]]:
        """Synthesizer keys grouped by their number of checkpoints M (one rule per M)."""
        groups: dict[int, list[str]] = {}
        for key, node in self.nodes.get("synthesizer", {}).items():
            groups.setdefault(node.params["checkpoints"], []).append(key)
        return groups


class _RunBuilder:
    """Lays out one run's nodes in the order of the method; the sections below follow the Snakefile's."""

    def __init__(self, plan: Plan, name: str, settings: dict):
        self.plan, self.name, self.s = plan, name, pin_models(settings)
        self.nodes: dict[tuple, Node] = {}

    def add(self, stage, inputs, params, resources="cpu", **kw) -> Node:
        node = self.plan.add(stage, inputs, params, resources, self.name, **kw)
        self.nodes.setdefault((stage, node.key), node)
        return node

    def build(self) -> Run:
        s = self.s
        pool = self.snippet_pool()
        dp = self.teacher(pool.seed)
        scorer = self.scorer(pool.seed, dp)
        reference = self.reference(dp)
        dp_features = self.gradients(dp.path("samples"), reference)
        original = model_path(s["models"]["synthesizer"])
        enhanced = synthesizer = self.synthesizer([dp.path("samples")])
        iterations = [Iteration(synthesizer)]
        offset = 0
        for i, it in enumerate(s["bootstrap"]["iterations"], start=1):
            shards, select = self.iteration(i, it, offset, pool.seed, synthesizer, reference, dp_features, scorer)
            offset += it["snippets"]
            data = [select.path("selected")]
            if s["bootstrap"].get("data_mix", "selected") == "selected+dp":
                data.append(dp.path("samples"))
            # Appendix E's M_0, the model every iteration is fine-tuned from (bootstrap.init)
            inits = {"initial": None, "enhanced": enhanced, "previous": synthesizer}
            init = inits[s["bootstrap"].get("init", "enhanced")]
            synthesizer = self.synthesizer(data, init)
            iterations.append(Iteration(synthesizer, shards, select))
        final = self.synthesize(pool.seed.path("supply"), self.last_checkpoint(synthesizer), offset, s["final"]["size"])
        target = self.target(final, pool.seed)
        evaluation = self.evaluate(target, s["evaluation"])
        probes = {}
        for stage in s.get("probes", {}).get("stages", []):
            model = original if stage == "original" else self.last_checkpoint(iterations[stage].synthesizer)
            probes["original" if stage == "original" else f"iter{stage}"] = self.probe(pool.seed, model, offset)
        return Run(self.name, s, pool, dp, scorer, reference, dp_features, iterations, final, target, evaluation,
                   probes, list(self.nodes.values()))

    # --- the snippet pool (Appendix A, B) ---------------------------------------------------------

    def snippet_pool(self) -> Pool:
        p, m = self.s["pool"], self.s["models"]
        # the files the sources hold are in the key: one added, edited or removed reruns extract and what follows
        files = [self.plan.source_fingerprint(src) for src in p["sources"]]
        extract = self.add("extract", {}, {"sources": p["sources"], "files": files, "limit": p.get("limit"),
                                           "seed": p["seed"].get("seed", 0)})
        dedup = self.add("dedup", {"functions": extract.path("functions")}, p["dedup"])
        filt = self.add("filter", {"pool": dedup.path("pool")}, p["filter"])
        quality = self.add("quality", {"pool": filt.path("pool"), **model_inputs(m["quality"])},
                           {"generator": backend_spec(self.s["backends"]["quality"], m["quality"]), **p["quality"]},
                           "generate")
        d = p["decontaminate"]
        decon = self.add("decontaminate", {"pool": quality.path("pool")},
                         {**d, "benchmarks": sources(d.get("benchmarks", "evaluation"), self.s["evaluation"])})
        embedder = "minilm" if m["embedder"] == "embedded:minilm" else m["embedder"]
        # embeddings of the whole pool: a GPU job on the cluster (instructor-large)
        categorize = self.add("categorize", {"pool": decon.path("pool")}, {"embedder": embedder, **p["categorize"]},
                              "generate")
        seed = self.add("seed", {"pool": categorize.path("pool")}, p["seed"])
        return Pool(extract, dedup, filt, quality, decon, categorize, seed)

    # --- the enhanced synthesizer: D_p from the teacher, then fine-tuning (iteration 0) -----------

    def teacher(self, seed: Node) -> Node:
        s = self.s
        return self.add("teacher", {"snippets": seed.path("seeds"), **model_inputs(s["models"]["teacher"])},
                        {"generator": backend_spec(s["backends"]["teacher"], s["models"]["teacher"]),
                         "model_name": s["models"]["teacher"], "sampling": s["teacher"].get("sampling", {}),
                         "protocol": s["teacher"].get("protocol", "single")},
                        "generate")

    def synthesizer(self, data: list[str], init: Node | None = None) -> Node:
        """The synthesizer fine-tuned on ``data`` from the last checkpoint of ``init``, or from the
        original model (``models.synthesizer``) when ``init`` is None."""
        inputs = {"data": data}
        if init is not None:
            model = inputs["init"] = self.last_checkpoint(init)
        else:
            model = model_path(self.s["models"]["synthesizer"])
            inputs.update(model_inputs(self.s["models"]["synthesizer"]))
        return self.add("synthesizer", inputs,
                        {"model": model, "format": "synthesis", "checkpoints": self.num_checkpoints,
                         "train": self.s["synthesizer"]["train"]}, "train", role="synthesizer")

    @property
    def num_checkpoints(self) -> int:
        return self.s["synthesizer"]["checkpoints"]

    def last_checkpoint(self, synthesizer: Node) -> str:
        return synthesizer.path("checkpoint", m=self.num_checkpoints)

    # --- each bootstrap iteration: multi-checkpoint sampling, multi-aspect scoring, influence -----

    @property
    def sampling(self) -> dict:
        keys = ("temperature", "top_p", "max_new_tokens", "seed")
        return {k: self.s["sampling"][k] for k in keys if k in self.s["sampling"]}

    def iteration(self, i, it, offset, seed, synthesizer, reference, dp_features,
                  scorer) -> tuple[list[Shard], Node]:
        """Sampling, scoring, best-of and influence run per shard of the iteration's snippets
        (``bootstrap.shards`` parallel jobs each); the top-K selection gathers all shards."""
        shards = self.s["bootstrap"].get("shards", 1)
        bounds = [it["snippets"] * p // shards for p in range(shards + 1)]
        parts = [self.shard(i, offset + lo, hi - lo, seed, synthesizer, reference, dp_features, scorer)
                 for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
        by = self.s["bootstrap"].get("selection", "influence")
        inputs = {"candidates": [p.best.path("candidates") for p in parts]}
        if by == "influence":
            inputs["features"] = [p.gradients.path("features") for p in parts]
            inputs["reference_features"] = dp_features.path("features")
        elif by in ("low_perplexity", "high_perplexity"):
            inputs["perplexity"] = [p.perplexity.path("perplexity") for p in parts]
        select = self.add("select", inputs,
                          {"size": it["select"], "by": by, "seed": self.s["bootstrap"].get("seed", 0)})
        return parts, select

    def shard(self, i, start, count, seed, synthesizer, reference, dp_features, scorer: Scorer) -> Shard:
        s = self.s
        multi = s["sampling"].get("multi_checkpoint", True)
        n = s["sampling"].get("n", 1)
        # Without multi-checkpoint sampling the same M*N samples come from the last checkpoint.
        checkpoints = list(range(1, self.num_checkpoints + 1)) if multi else [self.num_checkpoints]
        # {m} is left for the sampling job: each job reads only its own checkpoint, which its
        # generator serves (the key names the synthesizer by its role: the checkpoint is an input)
        sample = self.add("sample", {"snippets": seed.path("supply"),
                                     "checkpoint": synthesizer.path("checkpoint", m="{m}")},
                          {"generator": backend_spec(s["backends"]["sampling"], "synthesizer"),
                           "iteration": i, "start": start, "count": count, "checkpoint_list": checkpoints,
                           "sampling": {**self.sampling, "n": n if multi else n * self.num_checkpoints},
                           "protocol": s["sampling"].get("protocol", "single")},
                          "generate", models={"generator": "checkpoint"})
        sample_files = [sample.path("samples", m=m) for m in checkpoints]
        sc = s["scorer"]
        score = None
        if sc.get("enabled", True):
            score = self.score(sample_files, scorer)
            inputs = {"scored": score.path("scored")}
            if scorer.weights is not None:
                inputs["weights"] = scorer.weights.path("weights")
            best = self.add("best", inputs, {"selector": sc["selector"], "weights": sc["weights"],
                                             "aspects": list(sc["aspects"])})
        else:  # Table 4 "w/o multi-aspect scoring": one random candidate per snippet (our reading)
            best = self.add("best", {"scored": sample_files}, {"selector": "random", "seed": sc.get("seed", 0)})
        part = Shard(sample, sample_files, best, score)
        by = s["bootstrap"].get("selection", "influence")
        if by == "influence":
            part.gradients = self.gradients(best.path("candidates"), reference, dp_features)
        elif by in ("low_perplexity", "high_perplexity"):
            part.perplexity = self.perplexity(best.path("candidates"), reference)
        return part

    def score(self, samples: list[str], scorer: Scorer) -> Node:
        """The multi-aspect scores of ``samples`` by the scorer the iterations use: the fine-tuned
        scorer (``scorer.train``) or ``models.scorer`` prompted, in ``scorer.mode``."""
        s, sc = self.s, self.s["scorer"]
        model = scorer.model
        inputs = {"scorer": model.path("model")} if model is not None else model_inputs(s["models"]["scorer"])
        return self.add("score", {"samples": samples, **inputs},
                        {"generator": backend_spec(s["backends"]["scoring"],
                                                   model.path("model") if model is not None else s["models"]["scorer"]),
                         "aspects": sc["aspects"], "mode": sc.get("mode", "generate"),
                         "max_new_tokens": sc.get("max_new_tokens", 160)}, "generate")

    def scorer(self, seed: Node, dp: Node) -> Scorer:
        """The multi-aspect scorer (Appendix C): its training data scored by the teacher, the
        fine-tuned scorer, and the aspect weights (uniform, fixed, or learned from K experiments)."""
        s, sc = self.s, self.s["scorer"]
        out = Scorer()
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
        if sc.get("train"):
            out.annotation = self.add(
                "score", {"samples": [data.path("data")], **model_inputs(s["models"]["teacher"])},
                {"generator": backend_spec(s["backends"]["teacher"], s["models"]["teacher"]),
                 "aspects": sc["aspects"], "mode": sc["data"].get("mode", "generate"),
                 "max_new_tokens": sc.get("max_new_tokens", 160)}, "generate")
            out.model = self.add("scorer", {"data": [out.annotation.path("scored")],
                                            **model_inputs(s["models"]["scorer"])},
                                 {"model": model_path(s["models"]["scorer"]), "format": "scoring",
                                  "aspects": sc["aspects"], "train": sc["training"]}, "train", role="scorer")
        if learned:
            # eq. 2's x̄_k are the multi-aspect scores x of eq. 1, so the scorer the iterations
            # use scores the experiments' data (on the scale its weights will be applied to)
            out.experiments = self.score([data.path("data")], out)
            out.weights = self.weights(out.experiments)
        return out

    def weights(self, scored: Node) -> Node:
        """Eq. 2: K datasets of different quality mixes, each fine-tunes the target base model and
        is scored on a held-out benchmark; ridge regression of the scores on the mean aspect vectors."""
        w = self.s["scorer"]["weights"]
        aspects = list(self.s["scorer"]["aspects"])
        mixes, scores = [], []
        for j in range(w["experiments"]):
            mix = self.add("mix", {"scored": scored.path("scored")},
                           {"experiment": j, "experiments": w["experiments"], "size": w["size"],
                            "seed": w.get("seed", 0), "aspects": aspects,
                            "require_full_rank": w.get("require_full_rank", True)})
            target = self.finetune([mix.path("data")], self.s["models"]["target"], w["train"], "weights")
            mixes.append(mix.path("stats"))
            scores.append(self.evaluate(target, w["benchmark"]).path("scores"))
        return self.add("weights", {"mixes": mixes, "scores": scores},
                        {"aspects": aspects, "alpha": w["alpha"], "metric": w["metric"]})

    def reference(self, dp: Node) -> Node:
        """The LoRA reference model trained on D_p (its checkpoints give the gradients)."""
        s = self.s
        return self.add("reference", {"data": [dp.path("samples")], **model_inputs(s["models"]["reference"])},
                        {"model": model_path(s["models"]["reference"]), "format": "instruction",
                         "lora": s["reference"]["lora"], "train": s["reference"]["train"],
                         "checkpoints": s["reference"].get("checkpoints", 1)}, "train", role="reference")

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

    def perplexity(self, data: str, reference: Node) -> Node:
        """Perplexity of each candidate's response under the reference model (Figure 4's
        perplexity selectors; which model the paper used is not stated)."""
        inf = self.s["influence"]
        return self.add("perplexity", {"data": data, "adapter": reference.path("adapter"),
                                       **model_inputs(self.s["models"]["reference"])},
                        {"model": model_path(self.s["models"]["reference"]),
                         "max_length": inf.get("max_length", 4096)}, "gradients")

    # --- the final data, the target model (SCoder) and its evaluation ------------------------------

    def synthesize(self, snippets: str, model: str, start: int, count: int, n: int = 1) -> Node:
        """Synthesis samples from ``model`` over ``count`` snippets from ``start`` (final data, probes,
        the scorer's training data)."""
        s = self.s
        inputs = {"snippets": snippets, **({"model": model} if model.startswith(WORK) else model_inputs(model))}
        return self.add("synthesize", inputs,
                        {"generator": backend_spec(s["backends"]["sampling"], model), "start": start,
                         "count": count, "sampling": {**self.sampling, "n": n},
                         "protocol": s["sampling"].get("protocol", "single")}, "generate")

    def standin(self, seed: Node, data: str, size: int | None) -> Node:
        return self.add("standin", {"snippets": seed.path("supply")}, {"kind": data.split(":", 1)[1], "size": size})

    def finetune(self, data: list[str], model: str, train: dict, phase: str, external: str | None = None,
                 size: int | None = None) -> Node:
        """A fine-tuned target model (phase 1 and 2 of SCoder, probes, weight experiments)."""
        inputs = {"data": data, **({"init": model} if model.startswith(WORK) else model_inputs(model))}
        return self.add("target", inputs, {"model": model_path(model), "phase": phase, "format": "instruction",
                                           "external_data": external, "size": size, "train": train},
                        "train", role="target")

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

    def evaluate(self, target: Node, evaluation: dict) -> Node:
        return self.add("evaluate", {"model": target.path("model")},
                        {"generator": backend_spec(self.s["backends"]["evaluation"], target.path("model")),
                         **evaluation}, "generate")

    def probe(self, seed: Node, model: str, offset: int) -> Probe:
        """Table 2: the target base model fine-tuned on data from one stage's synthesizer, evaluated."""
        p = self.s["probes"]
        data = self.synthesize(seed.path("supply"), model, offset, p["size"])
        target = self.finetune([data.path("samples")], self.s["models"]["target"], p["train"], "probe")
        return Probe(data, target, self.evaluate(target, self.s["evaluation"]))


def main(argv: list[str] | None = None) -> None:
    """Print the runs, input files and settings of the stage instances under the given folders."""
    import yaml

    from scoder.config import validate, validate_soda
    from scoder.soda.plan import SodaPlan

    with open("config/config.yaml", encoding="utf-8") as f:
        config = yaml.safe_load(f)
    plan = Plan(validate(config))
    plans = [plan, SodaPlan(validate_soda(config), plan)]
    for folder in argv if argv is not None else sys.argv[1:]:
        parts = folder.rstrip("/").split("/")
        if len(parts) < 3 or parts[-3] != WORK:
            raise SystemExit(f"{folder}: expected a stage folder {WORK}/<stage>/<key>")
        stage, key = parts[-2:]
        owner = next((p for p in plans if stage in p.files), None)
        if owner is None:
            raise SystemExit(f"{folder}: no stage '{stage}' (stages: {', '.join(sorted(FILES))}, soda_*)")
        node = owner.node(stage, key)
        print(json.dumps({"stage": stage, "key": key, "runs": node.runs, "inputs": node.inputs,
                          "settings": node.settings()}, indent=2))


if __name__ == "__main__":
    main()
