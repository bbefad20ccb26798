"""Fine-tuning on the GPU as the training rules run it (``scoder.training.launch``): a LoRA (the
reference model) and a full fine-tune (synthesizer, target) in bf16 mixed precision with the
cluster's device settings, interrupted, resumed from the saved trainer state, checkpoints
exported; and SODA's DPO step."""
import json
import math

import pytest
import torch
from safetensors import safe_open
from transformers import TrainerCallback

from gpu_support import chat_examples
from scoder.data import to_chat
from scoder.device import DeviceSettings
from scoder.training.launch import train_model, train_stage
from scoder.training.trainer import train_sft

TRAIN = dict(epochs=1, learning_rate=1e-4, global_batch_size=2, per_device_batch_size=2, max_length=512,
             warmup_ratio=0.0, lr_scheduler="linear", seed=0)
REFERENCE_LORA = {"r": 128, "alpha": 512, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def cluster_settings(cuda: bool) -> DeviceSettings:
    """The paper runs' train family (config/config.yaml): bf16, sdpa, gradient checkpointing."""
    return DeviceSettings(family="tests.gpu.train", gpus=1 if cuda else 0, dtype="bfloat16",
                          attn_implementation="sdpa", gradient_checkpointing=True)


class Interrupt(TrainerCallback):
    """Records how the trainer runs, then stops it by an error after step ``at`` (a killed job)."""

    def __init__(self, at: int):
        self.at, self.seen = at, {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 1:
            p = next(model.parameters())
            self.seen = {"device": p.device.type, "weights": str(p.dtype), "bf16": args.bf16,
                         "checkpointing": model.is_activation_checkpointing,
                         "attention": model.config._attn_implementation,
                         "loss": state.log_history[-1]["loss"] if state.log_history else None}
        if state.global_step == self.at:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_bf16_training_resumes_and_exports_checkpoints(kind, embedded_model, device, cuda, tmp_path):
    settings = cluster_settings(cuda)
    settings.require_gpus()
    samples = chat_examples(8)   # 4 steps; checkpoints after steps 2 and 4
    lora = REFERENCE_LORA if kind == "lora" else None
    outputs = [str(tmp_path / "out" / f"ckpt{m}") for m in (1, 2)]
    progress = tmp_path / "progress"
    # the same arguments train_stage gives train_sft, with a callback that stops it after step 3
    stage_settings = dict(TRAIN, **settings.train_settings(), num_checkpoints=2, lora=lora,
                          **({"save_adam_moments": True} if lora else {}))
    interrupt = Interrupt(at=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        train_sft(embedded_model, [to_chat(s, "instruction") for s in samples], str(progress / "train"),
                  callbacks=[interrupt], **stage_settings)
    assert interrupt.seen["bf16"] and interrupt.seen["checkpointing"] and interrupt.seen["attention"] == "sdpa"
    assert interrupt.seen["weights"] == "torch.float32"   # bf16 autocast over float32 master weights
    assert interrupt.seen["device"] == device

    paths = train_stage(samples, outputs, progress, model=embedded_model, format="instruction", train=TRAIN,
                        lora=lora, gpus=settings.gpus, save_adam_moments=lora is not None,
                        device=settings.train_settings())
    log = json.loads((progress / "train" / "train_log.json").read_text())
    assert paths == outputs and log["resumed_from_step"] == 2 and log["checkpoint_steps"] == [2, 4]
    assert [h["step"] for h in log["loss_history"]] == [1, 2, 3, 4]
    assert all(math.isfinite(h["loss"]) for h in log["loss_history"])
    final = tmp_path / "out" / "ckpt2"
    if lora:
        assert (final / "adapter_model.safetensors").exists() and (final / "adam_moments.safetensors").exists()
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(embedded_model), final)
    else:   # a full model is saved in its starting dtype, bf16, as vLLM expects
        with safe_open(str(final / "model.safetensors"), "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(final)
    ids = torch.tensor([[1, 2, 3, 4]], device=device)
    with torch.no_grad():
        assert torch.isfinite(model.to(device)(input_ids=ids).logits).all()
    if cuda:
        print(f"{kind}: peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def test_dpo_step_in_bf16(embedded_model, cuda, tmp_path):
    """SODA's contrastive step (DPOTrainer; the starting model as the frozen reference)."""
    settings = cluster_settings(cuda)
    records = [{"prompt": s["problem"], "chosen": s["solution"], "rejected": s["solution"].replace("return", "yield")}
               for s in chat_examples(4)]
    out = train_model("dpo", records, init=embedded_model, out_dir=str(tmp_path / "dpo"),
                      progress=tmp_path / "progress", train=TRAIN, beta=0.1, gpus=settings.gpus,
                      device=settings.train_settings())
    log = json.loads((tmp_path / "progress" / "train" / "train_log.json").read_text())
    assert log["global_step"] == 2 and all(math.isfinite(h["loss"]) for h in log["loss_history"])
    assert (tmp_path / "dpo" / "config.json").exists() and out == str(tmp_path / "dpo")
