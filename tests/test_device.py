"""A job's device settings (`resources:` families): dtype, attention and checkpointing reach
training, generation and gradient features; a job that asks for GPUs and finds none stops at once."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from transformers import TrainerCallback

from scoder.config import ConfigError, validate
from test_workflow import copy_workflow
from scoder.device import DeviceSettings, GPUUnavailable, gres_gpus
from scoder.influence.gradients import load_reference_model
from scoder.smk import stage
from scoder.training.checkpoints import fingerprint, state_fingerprint
from scoder.training.trainer import _hparams, train_sft

REPO = Path(__file__).resolve().parent.parent
CLUSTER = {"family": "runs.q14.resources.train", "gpu": 8, "dtype": "bfloat16", "attn_implementation": "sdpa",
           "gradient_checkpointing": 1}


def no_cuda(monkeypatch, count=0):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_settings_come_from_the_job_resources():
    s = DeviceSettings.from_resources(CLUSTER)
    assert (s.family, s.gpus, s.dtype, s.attn_implementation, s.gradient_checkpointing) == (
        "runs.q14.resources.train", 8, "bfloat16", "sdpa", True)
    assert DeviceSettings.from_resources({}) == DeviceSettings()   # outside Snakemake: CPU defaults
    # a gres replaces gpu in the job's resources (rules/common.smk sets gpu to 0 then)
    assert DeviceSettings.from_resources({"gpu": 0, "gres": "gpu:a100:4"}).gpus == 4
    assert [gres_gpus(g) for g in ("gpu", "gpu:2", "gpu:h100:8", "gpu:1g.10gb:3", "tmpdisk:10G", None)] == [
        1, 2, 8, 3, 0, 0]
    with pytest.raises(ValueError, match="runs.x.resources.train.dtype: 'bf16'"):
        DeviceSettings(family="runs.x.resources.train", dtype="bf16")


def test_a_job_that_asks_for_gpus_it_does_not_see_stops(monkeypatch):
    no_cuda(monkeypatch)
    DeviceSettings(gpus=0).require_gpus()   # a CPU family runs anywhere
    with pytest.raises(GPUUnavailable) as error:
        DeviceSettings.from_resources(CLUSTER).require_gpus()
    message = str(error.value)
    assert "runs.q14.resources.train asks for 8 GPU(s), but this job sees 0" in message
    assert "set runs.q14.resources.train.gpu: 0" in message and "--set-resources <rule>:gpu=0" in message
    no_cuda(monkeypatch, count=4)
    with pytest.raises(GPUUnavailable, match="asks for 8 GPU.s., but this job sees 4"):
        DeviceSettings.from_resources(CLUSTER).require_gpus()
    DeviceSettings(gpus=4).require_gpus()


def test_stage_stops_before_the_script_runs_and_logs_why(monkeypatch, tmp_path, capsys):
    no_cuda(monkeypatch)
    log = tmp_path / "log.txt"
    job = SimpleNamespace(threads=1, log=[str(log)], input={}, output={}, params={"settings": {}},
                          resources=CLUSTER)
    ran = []
    with pytest.raises(GPUUnavailable):
        with stage(job):
            ran.append(True)
    assert not ran
    assert "asks for 8 GPU(s)" in log.read_text() and "asks for 8 GPU(s)" in capsys.readouterr().err


def test_family_settings_map_onto_training_generation_and_features():
    cluster = DeviceSettings.from_resources(CLUSTER)
    assert cluster.train_settings() == {"bf16": True, "gradient_checkpointing": True, "attn_implementation": "sdpa"}
    assert DeviceSettings(dtype="float16").train_settings() == {"bf16": False, "fp16": True}
    assert DeviceSettings(dtype="float32").train_settings() == {"bf16": False}
    assert DeviceSettings().train_settings() == {}   # auto: the trainer decides, as before
    spec = {"backend": "transformers", "model": "m"}
    assert cluster.generator_spec(spec) == {**spec, "dtype": "bfloat16", "attn_implementation": "sdpa"}
    assert cluster.generator_spec({**spec, "dtype": "float32"})["dtype"] == "float32"   # the backend entry wins
    assert cluster.generator_spec({"backend": "vllm", "model": "m"}) == {"backend": "vllm", "model": "m",
                                                                         "dtype": "bfloat16"}
    openai = {"backend": "openai", "model": "gpt"}
    assert cluster.generator_spec(openai) == openai
    assert DeviceSettings().generator_spec(spec) == spec
    assert cluster.model_settings() == {"dtype": "bfloat16", "attn_implementation": "sdpa"}


def test_default_settings_keep_the_fingerprints_of_earlier_runs():
    common = dict(global_batch_size=2, per_device_batch_size=1, max_length=64, lr_scheduler="linear", seed=0,
                  bf16=None, gradient_checkpointing=False, deepspeed=None, save_steps=None)
    before = {"epochs": 1.0, "learning_rate": 0.001, "warmup_ratio": 0.0, "lora": None, **common}
    now = _hparams(1, 1e-3, 0.0, None, **common)
    assert now == before
    assert state_fingerprint(now, "fp", 1) == state_fingerprint(before, "fp", 1)
    # attention changes rounding only: same result fingerprint, another trainer state
    sdpa = _hparams(1, 1e-3, 0.0, None, attn_implementation="sdpa", **common)
    assert fingerprint(sdpa, []) == fingerprint(now, [])
    assert state_fingerprint(sdpa, "fp", 1) != state_fingerprint(now, "fp", 1)
    assert fingerprint(_hparams(1, 1e-3, 0.0, None, fp16=True, **{**common, "bf16": False}), []) != fingerprint(
        _hparams(1, 1e-3, 0.0, None, **{**common, "bf16": False}), [])


class ModelProbe(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.attention = model.config._attn_implementation
        self.checkpointing = model.is_activation_checkpointing
        self.bf16, self.fp16 = args.bf16, args.fp16


def test_training_runs_with_the_family_attention_and_checkpointing(micro_model, tmp_path):
    probe = ModelProbe()
    records = [{"messages": [{"role": "user", "content": f"Task {i}"},
                             {"role": "assistant", "content": f"return {i}"}]} for i in range(2)]
    device = DeviceSettings(dtype="float32", attn_implementation="eager", gradient_checkpointing=True)
    train_sft(micro_model, records, str(tmp_path / "out"), epochs=1, learning_rate=1e-3, global_batch_size=2,
              per_device_batch_size=2, max_length=64, callbacks=[probe], **device.train_settings())
    assert (probe.attention, probe.checkpointing, probe.bf16, probe.fp16) == ("eager", True, False, False)
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["settings"]["attn_implementation"] == "eager" and log["settings"]["gradient_checkpointing"]


def test_features_load_the_reference_with_the_family_attention(micro_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "lora"
    get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model),
                   LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(adapter)
    ref = load_reference_model(micro_model, str(adapter), "cpu", torch.float32, "eager")
    assert ref.get_base_model().config._attn_implementation == "eager"


def test_config_families_have_cluster_and_cpu_defaults():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    runs = validate(config)
    q14, tiny = runs["q14"]["resources"], runs["tiny"]["resources"]
    assert q14["train"]["dtype"] == "bfloat16" and q14["train"]["attn_implementation"] == "sdpa"
    assert q14["train"]["gradient_checkpointing"] is True
    assert {q14[f]["dtype"] for f in ("generate", "gradients")} == {"bfloat16"}
    # tiny extends q14 but keeps today's CPU behaviour
    assert all(DeviceSettings.from_resources(tiny[f]).train_settings() == {} for f in ("train", "generate"))
    config["runs"]["bad"] = {"extends": "tiny", "resources": {"train": {"attn_implementation": "flash"}}}
    with pytest.raises(ConfigError, match="attn_implementation"):
        validate(config)


def test_a_workflow_job_on_a_gpu_family_fails_at_once_without_cuda(tmp_path):
    """The real Snakemake job: a CPU machine running a family that asks for a GPU."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    work = copy_workflow(tmp_path / "repo")
    (work / "gpu.yaml").write_text(yaml.safe_dump({"runs": {"asks_gpu": {
        "extends": "tiny", "resources": {"cpu": {"gpu": 1}}}}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "results/scoder_asks_gpu.json", "--cores", "1",
                           "--configfile", "gpu.yaml", "--until", "extract"],
                          cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "GPUUnavailable: runs.asks_gpu.resources.cpu asks for 1 GPU(s), but this job sees 0" in (
        proc.stdout + proc.stderr)
    assert not list(work.glob("work/extract/*/functions*"))   # the stage itself never ran
