"""Fine-tuning: response-only loss, exact global batch, M checkpoints, LoRA, resumption, DPO."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from scoder.training.trainer import (BASE_CHAT_TEMPLATE, build_sft_trainer, checkpoint_steps, gradient_accumulation_steps,
                          main, train_dpo, train_sft)

# a short system turn replaces SmolLM2's default one, keeping sequences (and steps) small
SYSTEM = {"role": "system", "content": "Be brief."}


def chats(n):
    return [{"messages": [SYSTEM, {"role": "user", "content": f"Task {i}"},
                          {"role": "assistant", "content": f"return {i} * {i}"}]} for i in range(n)]


class AdamStateRecorder(TrainerCallback):
    """Total of each Adam moment over all parameters after every step, read off the optimizer."""

    def __init__(self):
        self.totals = {}

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        moments = list(optimizer.state.values())
        self.totals[state.global_step] = {k: sum(float(m[k].sum()) for m in moments)
                                          for k in ("exp_avg", "exp_avg_sq")}


class StepCounter(TrainerCallback):
    def __init__(self, crash_at=None):
        self.steps, self.crash_at = [], crash_at

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        if state.global_step == self.crash_at:
            raise RuntimeError("simulated crash")


def test_batch_and_checkpoint_arithmetic():
    assert gradient_accumulation_steps(128, 4, 8) == 4
    with pytest.raises(ValueError, match="not a multiple"):
        gradient_accumulation_steps(6, 4, 1)
    assert checkpoint_steps(10, 5) == [2, 4, 6, 8, 10]
    assert checkpoint_steps(20, 3) == [7, 14, 20]
    with pytest.raises(ValueError):
        checkpoint_steps(3, 5)


@pytest.mark.parametrize("template", ["chat", "base"])
def test_prompt_tokens_are_masked_from_the_loss(micro_model, tmp_path, template):
    model = micro_model
    if template == "base":  # a base model: no chat template, the Magicoder format is used
        model = str(shutil.copytree(micro_model, tmp_path / "base"))
        (Path(model) / "chat_template.jinja").unlink()
        assert not AutoTokenizer.from_pretrained(model).chat_template
    records = chats(2)
    trainer = build_sft_trainer(model, records, str(tmp_path / "state"), epochs=1, learning_rate=1e-3,
                                global_batch_size=2, per_device_batch_size=2)
    assert trainer.args.gradient_accumulation_steps == 1
    tok = trainer.processing_class
    assert (tok.chat_template == BASE_CHAT_TEMPLATE) == (template == "base")
    batch = next(iter(trainer.get_train_dataloader()))
    by_prompt = {r["messages"][1]["content"]: r for r in records}
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        text = tok.decode(ids)
        record = next(r for p, r in by_prompt.items() if p in text)
        prompt_ids = tok.apply_chat_template(record["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
        assert ids[:len(prompt_ids)] == prompt_ids
        assert all(lab == -100 for lab in labels[:len(prompt_ids)])
        response = [lab for lab in labels[len(prompt_ids):] if lab != -100]
        assert response == ids[len(prompt_ids):len(prompt_ids) + len(response)]
        assert tok.decode(response).startswith(record["messages"][-1]["content"] + tok.eos_token)


def test_full_finetune_overfits_and_keeps_m_checkpoints(micro_model, tmp_path):
    out = tmp_path / "sft"
    paths = train_sft(micro_model, chats(4), str(out), epochs=8, learning_rate=3e-2, lr_scheduler="constant",
                      global_batch_size=4, per_device_batch_size=4, num_checkpoints=3)
    assert paths == [str(out / f"ckpt{m}") for m in (1, 2, 3)]
    log = json.loads((out / "train_log.json").read_text())
    assert log["max_steps"] == 8 and log["checkpoint_steps"] == [3, 6, 8]
    losses = [h["loss"] for h in log["loss_history"]]
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    assert not (out / "_state").exists()  # optimizer states are dropped once training is done
    weights = []
    for path in paths:
        model = AutoModelForCausalLM.from_pretrained(path)
        assert AutoTokenizer.from_pretrained(path).chat_template
        weights.append(model.model.layers[0].self_attn.q_proj.weight.detach().clone())
    assert not weights[0].equal(weights[1]) and not weights[1].equal(weights[2])


def test_examples_whose_prompt_fills_max_length_fail_with_the_setting_to_raise(micro_model, tmp_path):
    long = [{"messages": [SYSTEM, {"role": "user", "content": "word " * 200},
                          {"role": "assistant", "content": "return 1"}]}]
    with pytest.raises(ValueError, match=r"none of the 1 training examples.*max_length=32.*train.max_length"):
        train_sft(micro_model, long, str(tmp_path / "sft"), epochs=1, learning_rate=1e-4,
                  global_batch_size=1, max_length=32)


def test_lora_adapter_has_configured_rank_and_targets(micro_model, tmp_path):
    from peft import AutoPeftModelForCausalLM

    lora = {"r": 4, "alpha": 16, "dropout": 0.0, "target_modules": ["v_proj", "q_proj", "k_proj"]}
    [path] = train_sft(micro_model, chats(2), str(tmp_path / "ref"), epochs=1, learning_rate=1e-3,
                       global_batch_size=2, per_device_batch_size=2, lora=lora)
    config = json.loads((Path(path) / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 16
    # sorted, not in the string-hash order PEFT writes its set in (differs between processes)
    assert config["target_modules"] == ["k_proj", "q_proj", "v_proj"]
    assert not (Path(path) / "model.safetensors").exists()  # only the adapter is exported
    model = AutoPeftModelForCausalLM.from_pretrained(path)
    lora_names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert lora_names and all(n.split(".lora_A")[0].endswith(("q_proj", "k_proj", "v_proj")) for n in lora_names)
    assert all(p.shape[0] == 4 for n, p in model.named_parameters() if "lora_A" in n)


def test_lora_checkpoints_keep_adam_moments_for_less_features(micro_model, tmp_path):
    from safetensors.torch import load_file

    from scoder.influence import gradients_stage, load_features
    from scoder.influence.gradients import load_reference_model, lora_parameters

    out, recorder = tmp_path / "ref", AdamStateRecorder()
    lora = {"r": 4, "alpha": 16, "dropout": 0.0}
    paths = train_sft(micro_model, chats(4), str(out), epochs=2, learning_rate=1e-3, global_batch_size=2,
                      per_device_batch_size=2, lora=lora, num_checkpoints=2, save_adam_moments=True,
                      callbacks=[recorder])  # 4 steps, checkpoints after steps 2 and 4
    moments = [load_file(Path(p) / "adam_moments.safetensors") for p in paths]
    for m, step in zip(moments, (2, 4)):  # the optimizer's state at that checkpoint's step
        for key, total in recorder.totals[step].items():
            assert sum(float(t.sum()) for k, t in m.items() if k.endswith("." + key)) == pytest.approx(total)
    # named and shaped as the adapter's parameters once the influence side loads them
    params = lora_parameters(load_reference_model(micro_model, paths[0], "cpu", torch.float32))
    expected = {f"{n}.{k}": tuple(p.shape) for n, p in params for k in ("exp_avg", "exp_avg_sq")}
    for m in moments:
        assert {k: tuple(t.shape) for k, t in m.items()} == expected
        assert all(t.dtype == torch.float32 for t in m.values())
        assert all((t >= 0).all() and t.abs().sum() > 0 for k, t in m.items() if k.endswith("exp_avg_sq"))
    assert any(not moments[0][k].equal(moments[1][k]) for k in expected)  # each checkpoint its own state

    # LESS: Adam-preconditioned features under both checkpoints, weighted by learning rate
    features = gradients_stage(micro_model, str(out), chats(2), str(tmp_path / "features"), k=64,
                               train_log=str(out / "train_log.json"), adam=True)
    info = json.loads((Path(features) / "checkpoints.json").read_text())
    assert info["checkpoints"] == ["ckpt1", "ckpt2"] and info["adam"] and len(info["weights"]) == 2
    assert all(np.isfinite(load_features(f"{features}/ckpt{m}")).all() for m in (1, 2))

    with pytest.raises(ValueError, match="LoRA"):  # a full model's moments are twice its size
        train_sft(micro_model, chats(2), str(tmp_path / "full"), epochs=1, learning_rate=1e-3,
                  global_batch_size=2, save_adam_moments=True)


def test_interrupted_training_resumes_from_saved_step(micro_model, tmp_path):
    out = tmp_path / "resume"
    kwargs = dict(epochs=2.5, learning_rate=1e-3, global_batch_size=2, per_device_batch_size=2,
                  num_checkpoints=2, save_steps=2)  # 5 steps; checkpoints at 3 and 5; state at 2, 3, 4
    crash = StepCounter(crash_at=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(micro_model, chats(4), str(out), callbacks=[crash], **kwargs)
    assert (out / "ckpt1").is_dir()
    assert not (out / "train_log.json").exists()

    rerun = StepCounter()
    paths = train_sft(micro_model, chats(4), str(out), callbacks=[rerun], **kwargs)
    assert rerun.steps == [5]  # only the step after the last saved state ran again
    log = json.loads((out / "train_log.json").read_text())
    assert log["resumed_from_step"] == 4 and log["checkpoint_steps"] == [3, 5]
    assert [h["step"] for h in log["loss_history"]] == [1, 2, 3, 4, 5]
    assert all(Path(p).is_dir() for p in paths)
    # what an unbroken run writes: the same log (but when and from where) and the same weights
    unbroken_paths = train_sft(micro_model, chats(4), str(tmp_path / "unbroken"), **kwargs)
    unbroken = json.loads((tmp_path / "unbroken" / "train_log.json").read_text())
    volatile = ("resumed_from_step", "train_runtime_s", "checkpoints")
    assert {k: v for k, v in log.items() if k not in volatile} == {k: v for k, v in unbroken.items() if k not in volatile}
    for mine, theirs in zip(paths, unbroken_paths):
        assert (Path(mine) / "model.safetensors").read_bytes() == (Path(theirs) / "model.safetensors").read_bytes()

    again = StepCounter()  # a finished run with the same arguments and data is not redone
    assert train_sft(micro_model, chats(4), str(out), callbacks=[again], **kwargs) == paths
    assert again.steps == []


def test_cli_runs_dpo(micro_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    pairs = [{"prompt": [SYSTEM, {"role": "user", "content": f"Square {i}"}],
              "chosen": [{"role": "assistant", "content": f"return {i} * {i}"}],
              "rejected": [{"role": "assistant", "content": f"return {i} +"}]} for i in range(2)]
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    settings = json.dumps({"beta": 0.1, "epochs": 1, "learning_rate": 1e-3})  # inline, as scoder.training.launch passes it
    main(["--method", "dpo", "--model", micro_model, "--data", str(data), "--out", str(tmp_path / "dpo"),
          "--settings", settings, "--global-batch-size", "1"])
    log = json.loads((tmp_path / "dpo" / "train_log.json").read_text())
    assert log["max_steps"] == 2 and log["settings"]["beta"] == 0.1
    assert "rewards/margins" in log["loss_history"][-1]
    AutoModelForCausalLM.from_pretrained(tmp_path / "dpo" / "ckpt1")
    assert train_dpo(micro_model, pairs, str(tmp_path / "dpo"), beta=0.1, epochs=1, learning_rate=1e-3,
                     global_batch_size=1) == str(tmp_path / "dpo" / "ckpt1")
