"""Content-keyed stage instances: the mechanism both plans (``scoder.plan``, ``scoder.soda.plan``) use.

Every stage instance ("node") writes into ``work/<stage>/<key>/`` where ``key``
is a digest of the stage, its input paths (which carry their own keys) and its
settings.  So two runs that agree on everything upstream of a stage share its
files, and editing one setting changes the keys of exactly that stage and its
descendants: only they rerun.  A Snakemake rule finds its node by ``(stage,
key)`` (the ``{key}`` wildcard) and reads the node's inputs and settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scoder.io import digest

WORK = "work"
EMBEDDED_MODELS = {"embedded:smollm2": f"{WORK}/models/smollm2-135m-instruct"}
# OpenAI-compatible responses, shared by every job and run (a cache: it changes no answer)
LLM_CACHE = f"{WORK}/cache/llm"


def file_pattern(files: dict, stage: str, name: str) -> str:
    """Snakemake output pattern of one of a stage's files (wildcard ``{key}``)."""
    return f"{WORK}/{stage}/{{key}}/{files[stage][name]}"


def stage_dir_pattern(stage: str) -> str:
    return f"{WORK}/{stage}/{{key}}"


@dataclass(eq=False)
class Node:
    """One stage instance: its key, the files it reads, the settings it runs with.

    ``params`` are the settings its key digests.  A job runs with ``settings()``: the
    params completed with what its stage and inputs already determine (so the key
    need not digest it again): the model a generator serves where that model is an
    input (``models``: generator spec -> input name; ``params`` name it by its role),
    the response cache of OpenAI-compatible backends, and the ``role`` a script
    shared by several stages plays (training: synthesizer, scorer, reference, ...)."""
    stage: str
    key: str
    inputs: dict
    params: dict
    files: dict  # the stage's file names
    resources: str = "cpu"
    role: str | None = None
    models: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)

    def path(self, name: str, **fmt) -> str:
        return f"{WORK}/{self.stage}/{self.key}/{self.files[name].format(**fmt)}"

    @property
    def dir(self) -> str:
        return f"{WORK}/{self.stage}/{self.key}"

    def job_inputs(self, **wildcards) -> dict:
        """The files one job reads: a ``{m}`` left in an input path is the job's checkpoint (sampling);
        a wildcard not given stays as it is."""
        known = _Wildcards(**wildcards)
        return {name: path.format_map(known) if isinstance(path, str) else path
                for name, path in self.inputs.items()}

    def settings(self, **wildcards) -> dict:
        """The settings one job runs with (see the class docstring)."""
        inputs = self.job_inputs(**wildcards)
        out = dict(self.params)
        for name, spec in self.params.items():
            if isinstance(spec, dict) and "backend" in spec:  # a generator (scoder.llm.make_generator)
                spec = dict(spec)
                if name in self.models:
                    spec["model"] = inputs[self.models[name]]
                if spec["backend"] == "openai":
                    spec.setdefault("cache_dir", LLM_CACHE)
                out[name] = spec
        if self.role is not None:
            out["role"] = self.role
        return out


class _Wildcards(dict):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


class DAG:
    """The nodes of every run of one method, deduplicated by key.  Subclasses name the
    method's stage files (``files``), its config section and its results file."""

    files: dict[str, dict[str, str]] = {}
    section = "runs"
    results = "results/<method>_{run}.json"

    def __init__(self):
        self.nodes: dict[str, dict[str, Node]] = {}
        self.runs: dict = {}

    def add(self, stage: str, inputs: dict, params: dict, resources: str, run: str, *,
            role: str | None = None, models: dict | None = None) -> Node:
        key = digest([stage, inputs, params], 10)
        node = self.nodes.setdefault(stage, {}).get(key)
        if node is None:
            node = Node(stage, key, inputs, params, self.files[stage], resources, role, dict(models or {}))
            self.nodes[stage][key] = node
        if run not in node.runs:
            node.runs.append(run)
        return node

    def node(self, stage: str, key: str) -> Node:
        try:
            return self.nodes[stage][key]
        except KeyError:
            raise KeyError(f"{WORK}/{stage}/{key} belongs to no run under {self.section}: in config/config.yaml: "
                           f"its settings, or the files of its pool.sources, changed since it was planned "
                           f"(ask for {self.result_file('<run>')} instead)") from None

    def result_file(self, run: str) -> str:
        return self.results.format(run=run)

    def run_settings(self, run: str) -> dict:
        return self.runs[run].settings


def stage_table(nodes: list[Node]) -> list[dict]:
    """Stage, key, folder and resources family of each node (a run's results list them)."""
    return [{"stage": n.stage, "key": n.key, "dir": n.dir, "resources": n.resources} for n in nodes]


def model_path(name: str) -> str:
    """Where a configured model is read from: embedded models come from a rule."""
    return EMBEDDED_MODELS.get(name, name)


def model_inputs(name: str) -> dict:
    """Snakemake inputs for a model: only embedded models are files of the workflow."""
    return {"model": EMBEDDED_MODELS[name]} if name in EMBEDDED_MODELS else {}


def backend_spec(backend: dict, model: str) -> dict:
    """A generator spec (``scoder.llm.make_generator``): a configured backend serving ``model``."""
    return {**backend, "model": model_path(model)}
