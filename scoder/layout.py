"""A SCoder run's layout: the nodes of its stages, grouped as the method is (``scoder.plan`` builds it).

A ``Run`` has its snippet ``Pool``, the teacher's D_p, the ``Scorer``, the
reference model and D_p's gradient features, one ``Iteration`` per bootstrap
step (iteration 0 trains the enhanced synthesizer on D_p; each later one is
split into ``Shard``s of parallel sampling, scoring and influence jobs, then
one selection), the final data, the target model, its evaluation and the
Table 2 ``Probe``s.  Its methods name the files its results are read from.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from scoder.dag import Node, stage_table


@dataclass
class Pool:
    """The snippet pool (Appendix A, B), one node per stage."""
    extract: Node
    dedup: Node
    filter: Node
    quality: Node
    decontaminate: Node
    categorize: Node
    seed: Node

    def stages(self) -> dict[str, Node]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def files(self) -> dict[str, str]:
        """The seed stage's split (seeds, supply) and every stage's stats."""
        return {"seeds": self.seed.path("seeds"), "supply": self.seed.path("supply"),
                **{f"{name}_stats": node.path("stats") for name, node in self.stages().items()}}


@dataclass
class Scorer:
    """The multi-aspect scorer (Appendix C); None where a run does without."""
    model: Node | None = None       # fine-tuned on the teacher's scores (scorer.train)
    annotation: Node | None = None  # the teacher's scores of the scorer's training data (scorer.train)
    experiments: Node | None = None  # the scorer's own scores of that data: eq. 2's x̄ (learned weights)
    weights: Node | None = None     # aspect weights learned from K experiments


@dataclass
class Shard:
    """One slice of an iteration's snippets: sampling (``sample_files``, one job per checkpoint),
    scoring, the best candidate per snippet and its selection value."""
    sample: Node
    sample_files: list[str]
    best: Node
    score: Node | None = None        # None without multi-aspect scoring
    gradients: Node | None = None    # selection by influence
    perplexity: Node | None = None   # selection by perplexity


@dataclass
class Iteration:
    """The synthesizer trained at the end of the iteration; from iteration 1 on, the shards it
    sampled from the previous synthesizer and the selection over all of them."""
    synthesizer: Node
    shards: list[Shard] = field(default_factory=list)
    select: Node | None = None


@dataclass
class Probe:
    """Table 2: the target base model fine-tuned on one stage's synthesized data, evaluated."""
    synthesize: Node
    target: Node
    evaluate: Node

    def files(self) -> dict[str, str]:
        return {"evaluation": self.evaluate.path("scores"), "synthesize_stats": self.synthesize.path("stats"),
                "target_log": self.target.path("log")}


@dataclass
class Run:
    name: str
    settings: dict
    pool: Pool
    teacher: Node
    scorer: Scorer
    reference: Node
    dp_features: Node | None
    iterations: list[Iteration]
    final: Node
    target: Node
    evaluate: Node
    probes: dict[str, Probe]
    nodes: list[Node]  # every node, in the order the method lays them out

    def stages(self) -> list[dict]:
        """The run's stage instances, for its results' costs and provenance."""
        return stage_table(self.nodes)

    def report_files(self) -> dict[str, str | list[str]]:
        """Named files the run's results are assembled from."""
        files: dict = {f"{name}_stats": node.path("stats") for name, node in self.pool.stages().items()}
        files["teacher_stats"] = self.teacher.path("stats")
        files["evaluation"] = self.evaluate.path("scores")
        for i, step in enumerate(self.iterations):
            files[f"iter{i}_train_log"] = step.synthesizer.path("log")
            if i:
                files[f"iter{i}_score_stats"] = [p.score.path("stats") for p in step.shards if p.score is not None]
                files[f"iter{i}_best_stats"] = [p.best.path("stats") for p in step.shards]
                files[f"iter{i}_select_stats"] = step.select.path("stats")
        if self.scorer.annotation is not None:
            files["scorer_annotation_stats"] = self.scorer.annotation.path("stats")
        if self.scorer.model is not None:
            files["scorer_log"] = self.scorer.model.path("log")
        if self.scorer.experiments is not None:
            files["scorer_experiments_stats"] = self.scorer.experiments.path("stats")
        if self.scorer.weights is not None:
            files["weights"] = self.scorer.weights.path("weights")
        files["final_stats"] = self.final.path("stats")
        files["target_log"] = self.target.path("log")
        return files

    def scored_files(self) -> dict[str, list[str]]:
        """Each iteration's scored samples (drawn in the run's figures)."""
        files = {}
        for i, step in enumerate(self.iterations[1:], start=1):
            scored = [part.score.path("scored") for part in step.shards if part.score is not None]
            if scored:
                files[f"iter{i}_scored"] = scored
        return files
