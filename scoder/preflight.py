"""Before the first job: every input the jobs to run need and cannot do without, checked at once.

A paper run that lacks its data should not fail after days of fine-tunes.  When
Snakemake has built the DAG of a real run (not ``-n``), ``rules/common.smk`` hands
the jobs that will run to ``check_jobs``; any problem stops the workflow before
a job starts, with one message listing every problem and the setting to fix
(``message``).  Only what those jobs read is checked, so the embedded run starts
without any paper data, and a stage already done does not need its inputs again.

Checked, per stage instance: the pool's sources (``pool.sources``), external
datasets (``target.phase1.data``, ``scorer.data.sources``, SODA's
``questions.source``), the benchmark the learned weights are fitted on
(``scorer.weights.benchmark``: its data, and for LiveCodeBench a date window
that holds problems), the API key variable of every OpenAI-compatible backend
(its presence only), local model folders, and with ``HF_HUB_OFFLINE=1`` that
hub models are in the cache.  Evaluation benchmarks stay optional: one without
data is reported absent with the reason, as before.

    problems = check_jobs(plans, ["work/extract/0123456789/functions.jsonl", ...])
    if problems: raise SystemExit(message(problems))
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from scoder.dag import WORK, DAG, Node
from scoder.hub import is_hub_model, split

_STAGE_DIR = re.compile(rf"^{WORK}/([^/]+)/([0-9a-f]{{10}})(?:/|$)")


@dataclass
class Problem:
    """One missing input: the setting that names it (within a run), what is wrong, the runs it stops."""
    section: str   # runs | soda_runs
    setting: str   # e.g. pool.sources[0].path
    what: str
    runs: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.section}.{self.runs[0]}.{self.setting}"
        also = f" (also runs {', '.join(self.runs[1:])})" if len(self.runs) > 1 else ""
        return f"{where}{also}: {self.what}"


def check_jobs(plans: list[DAG], outputs: list[str]) -> list[Problem]:
    """The problems of the stage instances that write ``outputs`` (any file of each job); the
    runs whose results are among ``outputs`` name the settings."""
    nodes: dict[tuple[str, str], tuple[DAG, Node]] = {}
    requested = []
    for path in map(str, outputs):
        m = _STAGE_DIR.match(path)
        plan = m and next((p for p in plans if m[1] in p.files), None)
        if plan and m[2] in plan.nodes.get(m[1], {}):
            nodes.setdefault((m[1], m[2]), (plan, plan.nodes[m[1]][m[2]]))
        requested += [run for plan in plans for run in plan.runs if _names_run(path, plan, run)]
    return check_nodes(list(nodes.values()), requested)


def _names_run(path: str, plan: DAG, run: str) -> bool:
    """Whether ``path`` is one of ``run``'s results (results file, probe, tables, figures)."""
    stem = plan.result_file(run).removesuffix(".json")
    return path.startswith(f"results/plots/{run}/") or re.fullmatch(
        re.escape(stem) + r"(_iter\d+|_original)?\.(json|md)", path) is not None


def check_nodes(nodes: list[tuple[DAG, Node]], requested: list[str] = ()) -> list[Problem]:
    """Every problem of the given stage instances, merged where runs share them; a problem names
    the ``requested`` runs it stops, or else the first run of its stage instance."""
    found: dict[tuple[str, str, str], Problem] = {}
    cache: dict = {}
    for plan, node in nodes:
        settings = plan.run_settings(node.runs[0])
        runs = [r for r in node.runs if r in requested] or node.runs[:1]
        for setting, what in _node_problems(plan, node, settings, cache):
            problem = found.setdefault((plan.section, setting, what), Problem(plan.section, setting, what))
            problem.runs += [r for r in runs if r not in problem.runs]
    return list(found.values())


def message(problems: list[Problem]) -> str:
    """One message naming every problem and its setting."""
    lines = [f"Cannot start: {len(problems)} input(s) the jobs to run need are missing (no job was started; "
             "fix the setting named, or provide the file):"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


# ------------------------------------------------------------------ per stage instance

def _node_problems(plan: DAG, node: Node, s: dict, cache: dict) -> list[tuple[str, str]]:
    out = []
    settings = node.settings()
    for name, value in settings.items():
        if isinstance(value, dict) and "backend" in value:
            out += _generator_problems(value, s)
    for key in ("model", "embedder"):
        if isinstance(settings.get(key), str):
            out += _model_problems(settings[key], s)
    stage = node.stage
    if stage == "extract":
        out += _source_problems(node.params["sources"])
    elif stage == "target" and node.params.get("external_data"):
        out += _file_problems(node.params["external_data"], "target.phase1.data", "evol-codealpaca-v1 as JSONL")
    elif stage == "scorer_data":
        for i, src in enumerate(node.params["sources"]):
            if src["file"] is None and src.get("data"):
                out += _file_problems(src["data"], f"scorer.data.sources[{i}].data",
                                      "a JSONL dataset of instruction/output (or problem/solution) records")
    elif stage == "evaluate" and _is_weight_experiment(plan, node):
        out += _weights_benchmark_problems(node.params, s, cache)
    elif stage == "soda_questions" and node.params["source"]["type"] == "file":
        out += _file_problems(node.params["source"]["path"], "questions.source.path",
                              "the initial questions (evol-codealpaca-v1 as JSONL)")
    return out


def _generator_problems(spec: dict, s: dict) -> list[tuple[str, str]]:
    if spec.get("backend") != "openai":
        return _model_problems(spec.get("model"), s)
    env = spec.get("api_key_env")
    if not env or os.environ.get(env):
        return []
    roles = [r for r, b in s["backends"].items() if b.get("backend") == "openai" and b.get("api_key_env") == env]
    where = f"backends.{roles[0]}.api_key_env" if roles else "backends"
    return [(where, f"environment variable {env} is not set: the API key of {spec.get('model')} "
                    f"(export {env}=..., or name the variable that holds it in {where})")]


def _role(model: str, s: dict) -> str:
    roles = [r for r, m in s["models"].items() if m == model]
    return f"models.{roles[0]}" if roles else "models"


def _model_problems(model, s: dict) -> list[tuple[str, str]]:
    """A local model folder must exist; a hub model must be cached when the hub is off."""
    if not isinstance(model, str) or model.startswith(f"{WORK}/") or ":" in model.split("/")[0]:
        return []
    if is_hub_model(model):
        return _hub_problems(model, s)
    local = model.startswith(("/", ".", "~")) or model.count("/") > 1
    if local and not Path(model).expanduser().exists():
        return [(_role(model, s), f"no model folder at {model} (a local checkpoint folder, or a hub id org/name)")]
    return []


def _hub_problems(model: str, s: dict) -> list[tuple[str, str]]:
    from huggingface_hub import constants, snapshot_download

    if not constants.HF_HUB_OFFLINE:
        return []
    name, revision = split(model)
    try:
        snapshot_download(name, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not usable offline
        return [(_role(model, s), f"hub model {model} is not in the Hugging Face cache and HF_HUB_OFFLINE is set "
                                  f"(`huggingface-cli download {name}` where the hub is reachable)")]
    return []


def _source_problems(sources: list[dict]) -> list[tuple[str, str]]:
    """The extract stage's own check of its sources, as (setting, message) pairs."""
    from scoder.pool.extract import source_problems

    return [tuple(problem.split(": ", 1)) for problem in source_problems(sources)]


def _file_problems(path: str, setting: str, what: str) -> list[tuple[str, str]]:
    return [] if Path(path).exists() else [(setting, f"no file at {path} ({what})")]


def _is_weight_experiment(plan: DAG, node: Node) -> bool:
    """An evaluation of a target fine-tuned for the learned weights (eq. 2)."""
    m = _STAGE_DIR.match(str(node.inputs.get("model", "")))
    target = m and plan.nodes.get(m[1], {}).get(m[2])
    return bool(target) and target.stage == "target" and target.params.get("phase") == "weights"


def _weights_benchmark_problems(evaluation: dict, s: dict, cache: dict) -> list[tuple[str, str]]:
    """The held-out benchmark of eq. 2 must have data, and problems in its window."""
    from scoder.benchmarks import Unavailable, data_missing
    from scoder.benchmarks.livecodebench import count_problems

    bench = s["scorer"]["weights"]["metric"].split(".")[0]
    setting = f"scorer.weights.benchmark.{bench}"
    reason = data_missing(bench, evaluation)
    if reason:
        return [(setting, f"the learned weights' benchmark (scorer.weights.metric {s['scorer']['weights']['metric']}) "
                          f"cannot run: {reason}")]
    if bench != "livecodebench":
        return []
    lcb = evaluation[bench]
    key = repr(sorted(lcb.items()))
    if key not in cache:
        try:
            cache[key] = count_problems(lcb), None
        except (Unavailable, ValueError) as e:
            cache[key] = 0, str(e)
    n, error = cache[key]
    if error:
        return [(setting, f"LiveCodeBench cannot be read: {error}")]
    if n == 0:
        return [(setting, f"LiveCodeBench {lcb.get('release')} at {lcb.get('path')} holds no problem dated "
                          f"{lcb.get('start_date')} .. {lcb.get('end_date')}: the regression target would be "
                          "empty (a later release holds that window, e.g. release_v5)")]
    return []
