"""Hub revisions: pinned in config (part of the keys), resolved to the cache's snapshot per job, recorded."""
import copy
import json

import pytest
import yaml

from scoder import hub
from scoder.config import ConfigError, validate
from scoder.plan import Plan

with open("config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding org/model at main (SHA) and tag v1 (OTHER)."""
    from huggingface_hub import constants

    repo = tmp_path / "models--org--model"
    for ref, commit in (("main", SHA), ("v1", OTHER)):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo


def with_revisions(run, revisions):
    config = copy.deepcopy(CONFIG)
    config["runs"]["pinned"] = {"extends": run, "revisions": revisions}
    return config


def test_a_pinned_model_is_part_of_the_keys_of_exactly_the_stages_that_use_it():
    config = with_revisions("q14", {"Qwen/Qwen2.5-Coder-14B-Instruct": SHA})
    plan = Plan(validate(config))
    q14, pinned = plan.runs["q14"], plan.runs["pinned"]
    assert pinned.iterations[0].synthesizer.params["model"] == f"Qwen/Qwen2.5-Coder-14B-Instruct@{SHA}"
    assert pinned.iterations[0].synthesizer is not q14.iterations[0].synthesizer
    assert pinned.pool.seed is q14.pool.seed and pinned.teacher is q14.teacher and pinned.reference is q14.reference
    # the scorer's data includes samples of the same model (Appendix C): pinned there too
    sources = [n for n in plan.nodes["synthesize"].values() if "pinned" in n.runs and n.params["start"] == 0
               and n.params["generator"]["model"].startswith("Qwen/Qwen2.5-Coder-14B")]
    assert sources and all(n.params["generator"]["model"].endswith(f"@{SHA}") for n in sources)


def test_revisions_name_models_of_the_run_loaded_from_the_hub():
    with pytest.raises(ConfigError, match=r"runs.pinned.revisions.org/unknown: not a model of this run"):
        validate(with_revisions("q14", {"org/unknown": SHA}))
    config = copy.deepcopy(CONFIG)
    config["runs"]["pinned"] = {"extends": "q14", "models": {"teacher": "org/teacher"},
                                "revisions": {"org/teacher": SHA}}
    with pytest.raises(ConfigError, match="served through an OpenAI-compatible API"):
        validate(config)


def test_a_job_loads_hub_models_from_their_snapshot_and_records_the_commit(hub_cache, tmp_path):
    settings = {"generator": {"backend": "vllm", "model": "org/model@v1"}, "model": "org/model",
                "teacher": {"backend": "openai", "model": "org/model"}, "data": ["work/x/y.jsonl"],
                "embedder": "minilm"}
    resolved, found = hub.resolve_settings(settings)
    assert resolved["generator"]["model"] == str(hub_cache / "snapshots" / OTHER)
    assert resolved["model"] == str(hub_cache / "snapshots" / SHA)
    assert resolved["teacher"] == settings["teacher"] and resolved["embedder"] == "minilm"
    assert {m: (i["revision"], i["commit"]) for m, i in found.items()} == {
        "org/model@v1": ("v1", OTHER), "org/model": (None, SHA)}
    stage = tmp_path / "work" / "sample" / "0123456789"
    stage.mkdir(parents=True)
    hub.record(stage, found)
    assert json.loads((stage / hub.RECORD).read_text())["org/model"]["commit"] == SHA
    assert sorted(hub.recorded_revisions([str(stage), str(tmp_path / "none")])["org/model"]["commits"]) == sorted(
        [OTHER, SHA])


def test_a_hub_model_missing_from_an_offline_cache_is_named(hub_cache):
    with pytest.raises(FileNotFoundError, match=r"org/absent@v2.*huggingface-cli download org/absent --revision v2"):
        hub.resolve_settings({"model": "org/absent@v2"})


def test_local_folders_and_workflow_outputs_are_not_hub_models(tmp_path):
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").mkdir()
    assert hub.is_hub_model("meta-llama/Llama-3.1-8B") and hub.is_hub_model(f"org/model@{SHA}")
    assert not hub.is_hub_model("work/target/0123456789/model")
    assert not hub.is_hub_model(str(tmp_path / "org" / "model")) and not hub.is_hub_model("gpt-4o-2024-08-06")


def test_stage_jobs_get_snapshot_folders_and_leave_the_record_beside_their_log(hub_cache, tmp_path, monkeypatch):
    from scoder.smk import _with_hub_snapshots

    monkeypatch.chdir(tmp_path)
    (tmp_path / "work" / "target" / "0123456789").mkdir(parents=True)
    settings = _with_hub_snapshots({"model": "org/model", "train": {"epochs": 1}}, "work/target/0123456789/log.txt")
    assert settings["model"].endswith(SHA)
    assert json.loads((tmp_path / "work/target/0123456789" / hub.RECORD).read_text())["org/model"]["commit"] == SHA
    # results and tables jobs load no model: their run settings stay as configured
    report = {"settings": {"scorer": {"data": {"sources": [{"model": "org/model"}]}}}}
    assert _with_hub_snapshots(report, "logs/report_q14.log") == report
