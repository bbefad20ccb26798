"""SODA as a DAG of files: the stage instances each configured ``soda_runs:`` run needs.

The same content-keyed mechanism as SCoder (``scoder.dag``): every
node writes into ``work/soda_<stage>/<key>/`` with ``key`` a digest of its
settings and input paths, so runs that agree upstream share folders (the
``cl`` and ``ds`` runs share the questions and the teacher's first-cycle
knowledge; an edit of the DPO beta reruns DPO and what follows, not the
teacher).  One cycle (§3):

    soda_teacher (new questions) -> soda_split -> soda_sft -> soda_dpo      Stage I
    -> soda_answer -> [soda_annotate -> soda_scorer, first cycle] -> soda_feedback   Stage II
    -> soda_update (the next cycle's new questions)                          Stage III

The cycle schedule (config ``accumulate``, ``student_init``): by default (the
paper's reading, config comment) a cycle's seed knowledge is the questions
the previous cycle's Stage III wrote, and its student continues from the
previous cycle's; ``accumulate: true`` makes a cycle's knowledge every question
so far (the teacher answers only the new ones, earlier answers and splits are
reused), ``student_init: base`` restarts each cycle from the base student.
The ablations of RQ2 are settings too: ``dpo.enabled: false`` (w/o fault),
``feedback.views`` without scoring or execution, ``update.by: random``
(w/o classification).
"""
from __future__ import annotations

from dataclasses import dataclass

from scoder.benchmarks.texts import sources
from scoder.hub import pin_models

from scoder.dag import DAG, Node, backend_spec, file_pattern, model_inputs, model_path, stage_table

SODA_FILES = {
    "soda_questions": {"questions": "questions.jsonl", "stats": "stats.json"},
    "soda_teacher": {"knowledge": "knowledge.jsonl", "failures": "failures.jsonl", "stats": "stats.json"},
    "soda_split": {"sft": "sft.jsonl", "fcl": "fcl.jsonl", "stats": "stats.json"},
    "soda_sft": {"model": "model", "log": "train_log.json"},
    "soda_dpo": {"model": "model", "log": "train_log.json"},
    "soda_answer": {"answers": "answers.jsonl", "stats": "stats.json"},
    "soda_annotate": {"annotations": "annotations.jsonl", "stats": "stats.json"},
    "soda_scorer": {"model": "model", "log": "train_log.json"},
    "soda_feedback": {"levels": "levels.jsonl", "stats": "stats.json"},
    "soda_update": {"questions": "questions.jsonl", "stats": "stats.json"},
    "soda_evaluate": {"results": "results.json", "completions": "completions.jsonl"},
}


def pattern(stage: str, name: str) -> str:
    """Snakemake output pattern of one of a SODA stage's files (wildcard ``{key}``)."""
    return file_pattern(SODA_FILES, stage, name)


@dataclass
class Cycle:
    """One distillation cycle's nodes (``update``: None in the last cycle)."""
    cycle: int
    teacher: Node
    split: Node
    sft: Node
    dpo: Node | None  # None without fault-aware contrastive learning (dpo.enabled: false)
    answer: Node
    feedback: Node
    update: Node | None = None


@dataclass
class SodaRun:
    name: str
    settings: dict
    questions: Node
    cycles: list[Cycle]
    annotate: Node | None  # the annotator's scores of the first answers (scorer.train)
    scorer: Node | None    # the scoring model fine-tuned on them
    evaluate: Node
    nodes: list[Node]      # every node, in the order the method lays them out

    def stages(self) -> list[dict]:
        """The run's stage instances, for its results' costs and provenance."""
        return stage_table(self.nodes)

    def report_files(self) -> dict[str, str]:
        """Named files ``results/soda_<run>.json`` is assembled from."""
        files = {"questions_stats": self.questions.path("stats"), "evaluation": self.evaluate.path("results")}
        if self.annotate is not None:
            files["annotate_stats"] = self.annotate.path("stats")
            files["scorer_log"] = self.scorer.path("log")
        for step in self.cycles:
            for stage, name in (("teacher", "stats"), ("split", "stats"), ("sft", "log"), ("dpo", "log"),
                                ("answer", "stats"), ("feedback", "stats"), ("update", "stats")):
                node = getattr(step, stage)
                if node is not None:
                    files[f"cycle{step.cycle}_{stage}_{name}"] = node.path(name)
        return files


class SodaPlan(DAG):
    """All nodes of all ``soda_runs``, deduplicated by key.  ``scoder_plan`` resolves a
    question source taken from a SCoder run's snippet pool."""

    files = SODA_FILES
    section = "soda_runs"
    results = "results/soda_{run}.json"

    def __init__(self, runs: dict[str, dict], scoder_plan: DAG | None = None):
        super().__init__()
        self.scoder_plan = scoder_plan
        self.runs: dict[str, SodaRun] = {}
        for name, settings in runs.items():
            self.runs[name] = _SodaRunBuilder(self, name, settings).build()


class _SodaRunBuilder:
    """Lays out one SODA run's nodes, cycle by cycle."""

    def __init__(self, plan: SodaPlan, name: str, settings: dict):
        self.plan, self.name, self.s = plan, name, pin_models(settings)
        self.nodes: list[Node] = []

    def add(self, stage, inputs, params, resources="cpu", **kw) -> Node:
        node = self.plan.add(stage, inputs, params, resources, self.name, **kw)
        if node not in self.nodes:
            self.nodes.append(node)
        return node

    def gen(self, role: str, model: str) -> dict:
        return backend_spec(self.s["backends"][role], model)

    def build(self) -> SodaRun:
        s, m = self.s, self.s["models"]
        questions = self.questions()
        new_questions = [questions.path("questions")]
        splits, cycles = [], []
        student, student_inputs = model_path(m["student"]), model_inputs(m["student"])
        scorer_path, scorer_inputs, annotate, scorer_node = self.scorer_model(None)
        for c in range(1, s["cycles"] + 1):
            teacher = self.add("soda_teacher", {"questions": new_questions[-1], **model_inputs(m["teacher"])},
                               {"generator": self.gen("teacher", m["teacher"]), "model_name": m["teacher"],
                                "sampling": s["teacher"]["sampling"], "errors": s["teacher"]["errors"],
                                "decontaminate": self.decontamination()},
                               "generate")
            split = self.add("soda_split", {"knowledge": teacher.path("knowledge")}, s["split"])
            splits.append(split)
            used = splits if s["accumulate"] else [split]
            init = student if s["student_init"] == "previous" or c == 1 else model_path(m["student"])
            init_inputs = student_inputs if init == student else model_inputs(m["student"])
            sft = self.add("soda_sft", {"data": [x.path("sft") for x in used], **_as_init(init_inputs)},
                           {"model": init, "train": s["sft"]["train"]}, "train", role="sft")
            dpo = None
            student = sft.path("model")
            if s["dpo"].get("enabled", True):  # disabled: the "w/o fault" ablation, the SFT model is the student
                dpo = self.add("soda_dpo", {"data": [x.path("fcl") for x in used], "init": sft.path("model")},
                               {"model": sft.path("model"), "beta": s["dpo"]["beta"], "train": s["dpo"]["train"]},
                               "train", role="dpo")
                student = dpo.path("model")
            student_inputs = {"init": student}
            asked = new_questions if s["accumulate"] else new_questions[-1:]
            # the key names the student by its role: its model is an input, which the generator serves
            answer = self.add("soda_answer", {"questions": list(asked), "model": student},
                              {"generator": self.gen("student", "student"),
                               "sampling": s["feedback"]["sampling"]}, "generate", models={"generator": "model"})
            if annotate is None and s["scorer"]["train"]:
                scorer_path, scorer_inputs, annotate, scorer_node = self.scorer_model(answer)
            views = s["feedback"].get("views", ["scoring", "execution"])
            scoring = {"generator": self.gen("scoring", scorer_path),
                       "scorer": {k: v for k, v in s["scorer"].items() if k in ("mode", "max_new_tokens")}}
            feedback = self.add("soda_feedback", {"answers": answer.path("answers"),
                                                  **(scorer_inputs if "scoring" in views else {})},
                                {**(scoring if "scoring" in views else {}),
                                 **{k: v for k, v in s["feedback"].items() if k not in ("sampling", "views")},
                                 "views": views}, "generate")
            update = None
            if c < s["cycles"]:
                u = s["update"]
                update = self.add("soda_update", {"levels": feedback.path("levels"), "questions": list(new_questions),
                                                  **model_inputs(m["teacher"])},
                                  {"generator": self.gen("teacher", m["teacher"]), "model_name": m["teacher"],
                                   "cycle": c + 1, "total": u["new_questions"], "ratio": u["ratio"],
                                   "by": u["by"], "seed": u["seed"] + c, "sampling": u["sampling"]},
                                  "generate")
                new_questions.append(update.path("questions"))
            cycles.append(Cycle(c, teacher, split, sft, dpo, answer, feedback, update))
        evaluation = self.add("soda_evaluate", {"model": student, **scorer_inputs},
                              {"generator": self.gen("evaluation", "student"),
                               "scorer_generator": self.gen("scoring", scorer_path),
                               "scorer": {k: v for k, v in s["scorer"].items() if k in ("mode", "max_new_tokens")},
                               **s["evaluation"]}, "generate", models={"generator": "model"})
        return SodaRun(self.name, s, questions, cycles, annotate, scorer_node, evaluation, list(self.nodes))

    def questions(self) -> Node:
        q = self.s["questions"]
        source = q["source"]
        inputs = {}
        if source["type"] == "scoder_supply":
            scoder = self.plan.scoder_plan
            if scoder is None or source["run"] not in scoder.runs:
                raise ValueError(f"soda_runs.{self.name}.questions.source.run: no SCoder run "
                                 f"'{source['run']}' under runs: to take the snippet supply from")
            inputs["supply"] = scoder.runs[source["run"]].pool.seed.path("supply")
        return self.add("soda_questions", inputs,
                        {"source": {k: v for k, v in source.items() if k in _SOURCE_KEYS[source["type"]]},
                         "limit": q.get("limit"),
                         "seed": q.get("seed", 0), "decontaminate": self.decontamination()})

    def decontamination(self) -> dict:
        """The questions' decontamination settings, its benchmarks resolved against the evaluation."""
        d = self.s["questions"]["decontaminate"]
        return {**d, "benchmarks": sources(d.get("benchmarks", "evaluation"), self.s["evaluation"])}

    def scorer_model(self, answer: Node | None):
        """(model path, Snakemake inputs, annotate node, scorer node) of the scoring model:
        the configured model prompted directly, or, when ``scorer.train``, that model
        fine-tuned on the annotator's scores of the first cycle's answers."""
        s, m = self.s, self.s["models"]
        if answer is None or not s["scorer"]["train"]:
            return model_path(m["scorer"]), _as_scorer(model_inputs(m["scorer"])), None, None
        sc = s["scorer"]
        annotate = self.add("soda_annotate", {"answers": answer.path("answers"), **model_inputs(m["annotator"])},
                            {"generator": self.gen("annotator", m["annotator"]), "model_name": m["annotator"],
                             "annotate": sc["annotate"], "mode": sc["annotate_mode"],
                             "max_new_tokens": sc["max_new_tokens"], "seed": sc.get("seed", 0)}, "generate")
        node = self.add("soda_scorer", {"data": annotate.path("annotations"), **model_inputs(m["scorer"])},
                        {"model": model_path(m["scorer"]), "train": sc["train_settings"]}, "train", role="scorer")
        return node.path("model"), {"scorer": node.path("model")}, annotate, node


# The settings of each question source (a run extending another may inherit the others).
_SOURCE_KEYS = {"file": ("type", "path", "field"), "scoder_supply": ("type",)}


def _as_init(inputs: dict) -> dict:
    return {"init": inputs["init"]} if "init" in inputs else dict(inputs)


def _as_scorer(inputs: dict) -> dict:
    return {"scorer": inputs["model"]} if "model" in inputs else {}

