"""A real run checks every input its jobs cannot do without before the first job, and names each."""
import copy
import subprocess
import sys
from pathlib import Path

import yaml

from scoder.config import validate, validate_soda
from scoder.io import write_jsonl
from scoder.plan import Plan
from scoder.preflight import check_jobs, check_nodes, message
from scoder.soda.plan import SodaPlan
from test_workflow import copy_workflow

REPO = Path(__file__).resolve().parent.parent
with open(REPO / "config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)


def paper_data(root: Path, lcb_dates: list[str]) -> dict:
    """q14's data under ``root``: Stack files, evol-codealpaca, LiveCodeBench releases 1-5
    (release 5 holding problems of ``lcb_dates``)."""
    (root / "stack").mkdir(parents=True)
    write_jsonl(root / "stack/part-0.jsonl", [{"content": "def f():\n    return 1\n"}])
    write_jsonl(root / "evol.jsonl", [{"instruction": "q", "output": "a"}])
    lcb = root / "lcb"
    lcb.mkdir()
    for i in range(1, 6):
        dates = lcb_dates if i == 5 else ["2023-06-01T00:00:00"]
        write_jsonl(lcb / ("test.jsonl" if i == 1 else f"test{i}.jsonl"),
                    [{"question_id": f"{i}-{j}", "contest_date": d} for j, d in enumerate(dates)])
    return {"pool": {"sources": [{"type": "stack", "path": str(root / "stack/*.jsonl")}]},
            "target": {"phase1": {"data": str(root / "evol.jsonl")}},
            "scorer": {"data": {"sources": [{"data": str(root / "evol.jsonl"), "count": 10}]},
                       "weights": {"benchmark": {"livecodebench": {"path": str(lcb)}}}}}


def problems_of(run_settings: dict, requested=("paper",)):
    config = copy.deepcopy(CONFIG)
    config["runs"]["paper"] = {"extends": "q14", **run_settings}
    plan = Plan(validate(config))
    return check_nodes([(plan, node) for node in plan.runs["paper"].nodes], list(requested))


def test_a_paper_run_with_its_data_and_key_has_no_problem(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # hub models are fetched when the jobs run
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    assert problems_of(paper_data(tmp_path, ["2024-11-02T00:00:00"])) == []


def test_offline_hub_models_must_be_cached_and_local_model_folders_exist(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    settings = paper_data(tmp_path, ["2024-11-02T00:00:00"])
    settings["models"] = {"reference": str(tmp_path / "checkpoints/llama-8b")}
    found = {p.setting: p.what for p in problems_of(settings)}
    assert found["models.reference"].startswith(f"no model folder at {tmp_path / 'checkpoints/llama-8b'}")
    assert "Qwen/Qwen2.5-Coder-14B-Instruct is not in the Hugging Face cache" in found["models.synthesizer"]


def test_every_missing_input_is_named_with_its_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = paper_data(tmp_path, ["2024-11-02T00:00:00"])
    (tmp_path / "evol.jsonl").unlink()
    settings["pool"]["sources"][0]["path"] = str(tmp_path / "nowhere/*.parquet")
    text = message(problems_of(settings))
    for setting in ("runs.paper.pool.sources[0].path", "runs.paper.target.phase1.data",
                    "runs.paper.scorer.data.sources[0].data", "runs.paper.backends.teacher.api_key_env"):
        assert setting in text
    assert "OPENAI_API_KEY is not set" in text
    assert f"no file at {tmp_path / 'evol.jsonl'}" in text and "nowhere/*.parquet' matches no file" in text
    assert "scorer.weights.benchmark" not in text


def test_the_learned_weights_need_problems_in_their_livecodebench_window(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    # release_v5 without a problem dated 2024-10..2025-01 (as release_v4's files): refused up front
    problems = problems_of(paper_data(tmp_path, ["2024-09-30T00:00:00", "2025-02-01T00:00:00"]))
    assert [p.setting for p in problems] == ["scorer.weights.benchmark.livecodebench"]
    assert "holds no problem dated 2024-10-01 .. 2025-01-31" in problems[0].what
    # and a release file that is not there is named
    settings = paper_data(tmp_path / "v4", ["2024-11-02T00:00:00"])
    (tmp_path / "v4/lcb/test5.jsonl").unlink()
    (problem,) = problems_of(settings)
    assert "test5.jsonl" in problem.what


def test_only_the_jobs_to_run_are_checked_and_the_requested_runs_named():
    plan = Plan(validate(CONFIG))
    soda = SodaPlan(validate_soda(CONFIG), plan)
    tiny = plan.runs["tiny"]
    # the embedded run needs nothing from outside, whatever the paper runs lack
    assert check_jobs([plan, soda], [n.dir + "/x" for n in tiny.nodes] + ["results/scoder_tiny.json"]) == []
    extract = plan.runs["q14"].pool.extract
    (problem,) = check_jobs([plan, soda], [extract.path("functions"), "results/scoder_q7_iter2.json"])
    assert str(problem).startswith("runs.q7.pool.sources[0].path: ")
    (problem,) = check_jobs([plan, soda], [soda.runs["cl"].questions.path("questions")])
    assert str(problem).startswith("soda_runs.cl.questions.source.path: ")


def test_snakemake_refuses_a_paper_like_run_before_any_job(tmp_path, micro_model):
    """The real workflow on a micro-model run that needs evol-codealpaca-v1 (absent): it exits
    non-zero, naming the file and its setting, and starts no job."""
    model = micro_model
    workdir = copy_workflow(tmp_path / "repo")
    roles = ("synthesizer", "teacher", "quality", "scorer", "reference", "target")
    run = {"extends": "tiny", "models": {**{r: str(model) for r in roles}, "embedder": "embedded:minilm"},
           "target": {"phase1": {"data": "data/evol-codealpaca-v1.jsonl"}}}
    (workdir / "paper.yaml").write_text(yaml.safe_dump({"runs": {"paperlike": run}}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "results/scoder_paperlike.json",
                           "--configfile", "paper.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "runs.paperlike.target.phase1.data: no file at data/evol-codealpaca-v1.jsonl" in out
    assert "rule extract:" not in out and not (workdir / "work").exists()
    # a dry run still lays the whole DAG out without the data
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "results/scoder_paperlike.json",
                          "--configfile", "paper.yaml"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0 and "target" in dry.stdout
