"""Resumable training runs that export M checkpoints evenly spaced over training.

``run`` wraps any transformers/TRL trainer: a callback exports ``out_dir/ckpt{m}``
(Hugging Face layout, written to a temporary folder and renamed, so a ckpt folder
that exists is complete) at the M checkpoint steps and saves the trainer state
there (and every ``save_steps``) in ``out_dir/_state``. A rerun with the same
settings and data resumes from the latest saved state; a finished run (all
checkpoints plus ``train_log.json`` with the same fingerprint) is returned as is.
On request (the LoRA reference model) each exported checkpoint also keeps the
optimizer's Adam moments, ``adam_moments.safetensors``, for LESS's Adam features.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from scoder.io import digest, read_json, write_json

STATE_DIR = "_state"
LOG_FILE = "train_log.json"
FINGERPRINT_FILE = "fingerprint.json"
ADAM_MOMENTS_FILE = "adam_moments.safetensors"  # scoder.influence.gradients.OPTIMIZER_FILES

# How a run executes, not what it computes: changing these keeps a finished run valid
# (the global batch is fixed), but a saved trainer state only resumes under the same ones.
EXECUTION_SETTINGS = ("per_device_batch_size", "gradient_checkpointing", "deepspeed", "save_steps",
                      "attn_implementation")

# what train_log.json keeps of each logged step
LOGGED = ("step", "epoch", "loss", "learning_rate", "grad_norm", "mean_token_accuracy",
          "rewards/accuracies", "rewards/margins")


def fingerprint(settings: dict, records: list[dict]) -> str:
    """Digest of the settings and data that determine the trained weights."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in settings.items() if k not in EXECUTION_SETTINGS},
                                       sort_keys=True).encode("utf-8"))
    for record in records:  # one record at a time: a 110K-example dataset is never one string
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def state_fingerprint(settings: dict, fp: str, world_size: int) -> str:
    """A saved trainer state also depends on how it was run (DeepSpeed layout, world size)."""
    # a setting absent from ``settings`` (attn_implementation unless set) leaves the digest as before it existed
    execution = {k: settings.get(k) for k in EXECUTION_SETTINGS if k in settings}
    return digest({"result": fp, "execution": execution, "world_size": world_size})


def checkpoint_steps(max_steps: int, num_checkpoints: int) -> list[int]:
    """Optimizer steps of the M checkpoints, evenly spaced, the last at the final step."""
    if num_checkpoints < 1 or max_steps < num_checkpoints:
        raise ValueError(f"cannot keep {num_checkpoints} distinct checkpoints over {max_steps} training steps")
    return [math.ceil(m * max_steps / num_checkpoints) for m in range(1, num_checkpoints + 1)]


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class CheckpointExporter:
    """Exports ``ckpt{m}`` at each of the M checkpoint steps and forces a trainer-state save
    there, so a resumed run never has to recreate a checkpoint it already exported."""

    def __init__(self, out_dir: Path, num_checkpoints: int, save_dtype: str | None = None,
                 save_adam_moments: bool = False):
        self.out_dir, self.num_checkpoints, self.save_dtype = out_dir, num_checkpoints, save_dtype
        self.save_adam_moments = save_adam_moments
        self.trainer = None  # set once the trainer exists: its save_model gathers DeepSpeed shards
        self.steps: list[int] = []

    def callback(self):
        from transformers import TrainerCallback

        exporter = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                exporter.steps = checkpoint_steps(state.max_steps, exporter.num_checkpoints)

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step in exporter.steps:
                    exporter.export(exporter.steps.index(state.global_step) + 1)
                    control.should_save = True
                if state.global_step >= state.max_steps:
                    # a final trainer state (optimizer included) would be deleted right away;
                    # a kill before train_log.json just redoes the last stretch
                    control.should_save = False
                return control

        return Callback()

    def export(self, m: int) -> None:
        final = self.out_dir / f"ckpt{m}"
        tmp = final.with_name(final.name + ".tmp")
        self.trainer.save_model(str(tmp))  # on every rank: ZeRO-3 gathers the full weights
        moments = adam_moments(self.trainer) if self.save_adam_moments else None  # every rank, too
        if self.trainer.is_world_process_zero():
            (tmp / "training_args.bin").unlink(missing_ok=True)
            sort_adapter_config(tmp)
            if moments is not None:
                from safetensors.torch import save_file
                save_file(moments, tmp / ADAM_MOMENTS_FILE, metadata={"format": "pt"})
            if self.save_dtype:
                cast_safetensors(tmp, self.save_dtype)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.trainer.accelerator.wait_for_everyone()


def sort_adapter_config(folder: Path) -> None:
    """PEFT writes ``target_modules`` (a set) in the process's string-hash order, so the same
    training saved a different ``adapter_config.json`` in every run; sorted, it is byte-identical."""
    path = Path(folder) / "adapter_config.json"
    if not path.exists():
        return
    config = json.loads(path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True))


def adam_moments(trainer) -> dict:
    """The Adam moments of every trainable parameter, as float32 CPU tensors named
    ``<parameter name>.exp_avg`` / ``.exp_avg_sq`` (what ``scoder.influence`` reads for LESS's
    Adam-preconditioned features). Called on every rank: under DeepSpeed each moment is
    gathered from its shards (a collective), elsewhere read from the torch optimizer's state."""
    params = [(n, p) for n, p in trainer.model.named_parameters() if p.requires_grad]
    if trainer.is_deepspeed_enabled:
        from deepspeed.utils import safe_get_full_optimizer_state

        def moment(p, key):
            return safe_get_full_optimizer_state(p, key)
    else:
        optimizer = trainer.optimizer
        while hasattr(optimizer, "optimizer"):  # accelerate's AcceleratedOptimizer wrapper
            optimizer = optimizer.optimizer

        def moment(p, key):
            return optimizer.state.get(p, {}).get(key)
    out = {}
    for name, p in params:
        for key in ("exp_avg", "exp_avg_sq"):
            t = moment(p, key)
            if t is None:
                raise RuntimeError(f"the optimizer has no {key} for {name}: saving Adam moments needs an "
                                   "Adam-type optimizer that has taken a step")
            # full-shape on every rank under DeepSpeed, where p itself may be a ZeRO-3 shard
            out[f"{name}.{key}"] = t.detach().float().cpu().contiguous()
    return out


def cast_safetensors(folder: Path, dtype: str) -> None:
    """Store a full model's weights in ``dtype`` (e.g. the starting model's bf16, where
    training ran in fp32), so checkpoints keep the size and dtype vLLM expects."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    for f in folder.glob("*.safetensors"):
        tensors = load_file(f)
        if all(t.dtype == target or not t.is_floating_point() for t in tensors.values()):
            continue
        mode = f.stat().st_mode
        save_file({k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()},
                  f, metadata={"format": "pt"})
        os.chmod(f, mode)
    config = folder / "config.json"
    if config.exists():
        write_json(config, {**read_json(config), "dtype": dtype})


def _finished(out_dir: Path, fp: str, ckpts: list[Path]) -> bool:
    log = out_dir / LOG_FILE
    return log.exists() and read_json(log).get("fingerprint") == fp and all(c.is_dir() for c in ckpts)


def _resumable_state(out_dir: Path, state_fp: str, ckpts: list[Path]) -> str | None:
    """Latest complete trainer checkpoint of this same run, provided every checkpoint
    exported before it is still there (otherwise training restarts from step 0)."""
    state_dir = out_dir / STATE_DIR
    fp_file = state_dir / FINGERPRINT_FILE
    if not fp_file.exists() or read_json(fp_file).get("fingerprint") != state_fp:
        return None
    # trainer_state.json is written last, so a checkpoint cut short by a kill has none
    saved = [p for p in state_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not saved:
        return None
    last = max(saved, key=lambda p: int(p.name.split("-")[1]))
    state = read_json(last / "trainer_state.json")
    done = [s for s in checkpoint_steps(state["max_steps"], len(ckpts)) if s <= state["global_step"]]
    return str(last) if all(ckpts[i].is_dir() for i in range(len(done))) else None


def run(build: Callable, out_dir: str, settings: dict, records: list[dict], *, num_checkpoints: int,
        world_size: int, resume: bool = True, save_dtype: str | None = None,
        save_adam_moments: bool = False, callbacks: list | None = None) -> list[str]:
    """Train the trainer that ``build(state_dir, callbacks)`` makes, resuming when possible;
    return the paths of ``out_dir/ckpt1..ckptM`` and write ``out_dir/train_log.json``.
    ``save_adam_moments`` also stores each checkpoint's Adam moments (``adam_moments``)."""
    out = Path(out_dir)
    fp = fingerprint(settings, records)
    state_fp = state_fingerprint(settings, fp, world_size)
    ckpts = [out / f"ckpt{m}" for m in range(1, num_checkpoints + 1)]
    if resume and _finished(out, fp, ckpts):
        return [str(c) for c in ckpts]
    last = _resumable_state(out, state_fp, ckpts) if resume else None
    if last is None and is_main_process():  # fresh start: drop what an older or different run left
        shutil.rmtree(out / STATE_DIR, ignore_errors=True)
        for stale in [*out.glob("ckpt*"), out / LOG_FILE]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        write_json(out / STATE_DIR / FINGERPRINT_FILE, {"fingerprint": state_fp})

    exporter = CheckpointExporter(out, num_checkpoints, save_dtype, save_adam_moments)
    trainer = build(str(out / STATE_DIR), [exporter.callback(), *(callbacks or [])])
    exporter.trainer = trainer
    if trainer.train_dataset is not None and len(trainer.train_dataset) == 0:
        raise ValueError(
            f"none of the {len(records)} training examples is left after tokenizing: an example whose "
            f"prompt alone fills max_length={settings.get('max_length')} tokens has no response to learn "
            f"and is dropped; raise the stage's train.max_length (or give it shorter examples)")
    start = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        state = trainer.state
        history = [{k: h[k] for k in LOGGED if k in h} for h in state.log_history if "loss" in h]
        write_json(out / LOG_FILE, {
            "fingerprint": fp,
            "settings": settings,
            "world_size": trainer.args.world_size,
            "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
            "num_examples": len(records),
            "max_steps": state.max_steps,
            "global_step": state.global_step,
            "resumed_from_step": int(Path(last).name.split("-")[1]) if last else 0,
            "checkpoint_steps": exporter.steps,
            "checkpoints": [str(c) for c in ckpts],
            "loss_history": history,
            "train_runtime_s": round(time.time() - start, 2),
            # the trainer's own training_loss averages only the steps of this call: after a resume,
            # the stretch since the saved state
            "train_loss": sum(h["loss"] for h in history) / len(history) if history else result.training_loss,
        })
        # optimizer states are several times the model's size and nothing needs them now
        shutil.rmtree(out / STATE_DIR, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return [str(c) for c in ckpts]
