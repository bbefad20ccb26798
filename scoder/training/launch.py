"""Training as a workflow stage: the one way to launch a fine-tune and publish its checkpoints.

``fit`` trains in this process (CPU or one GPU) or, on several GPUs, under
``accelerate launch`` with DeepSpeed ZeRO-3 (``python -m scoder.training``
in each process).  The trainer's resumable state stays in the stage's progress
folder (``scoder.ledger.progress_dir``); ``publish`` hard-links the finished
checkpoints into the declared outputs, so a 14B checkpoint is not copied and
a rerun still finds the finished training.  SCoder's training stages call
``train_stage``, SODA's ``train_model``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scoder.io import write_jsonl

ZERO3 = "config/accelerate/zero3.yaml"


def fit(method: str, records: list[dict], progress: str | Path, *, model: str, settings: dict,
        gpus: int = 0) -> list[str]:
    """Fine-tune ``model`` on ``records`` (chat examples for sft, preference records for dpo) with
    ``settings`` (keyword arguments of ``train_sft`` / ``train_dpo``); returns the checkpoints
    ``progress/train/ckpt1..M``."""
    if method not in ("sft", "dpo"):
        raise ValueError(f"method must be sft or dpo, got {method!r}")
    progress, out = Path(progress), Path(progress) / "train"
    if gpus > 1:
        data = progress / "data.jsonl"
        write_jsonl(data, records)
        # DeepSpeed ZeRO-3 shards the 7-14B full fine-tunes across the node's GPUs.
        cmd = ["accelerate", "launch", "--config_file", ZERO3, "--num_processes", str(gpus), "-m", "scoder.training",
               "--method", method, "--model", model, "--data", str(data), "--out", str(out),
               "--settings", json.dumps(settings)]
        print("launching:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=sys.stdout, stderr=sys.stderr)
        count = 1 if method == "dpo" else settings.get("num_checkpoints", 1)
        return [str(out / f"ckpt{m}") for m in range(1, count + 1)]
    from scoder.training.trainer import train_dpo, train_sft

    if method == "dpo":
        return [train_dpo(model, records, str(out), **settings)]
    return train_sft(model, records, str(out), **settings)


def publish(src: str, dst: str) -> str:
    """Hard-link the model folder ``src`` into the declared output ``dst``."""
    path = Path(dst)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, path, copy_function=os.link)
    return str(path)


def train_stage(samples: list[dict], outputs: list[str], progress: str | Path, *, model: str, format: str,
                train: dict, lora: dict | None = None, gpus: int = 0, save_adam_moments: bool = False,
                device: dict | None = None) -> list[str]:
    """SCoder: fine-tune ``model`` on instruction ``samples`` (as chat examples of ``format``) and
    publish its M = len(``outputs``) checkpoints there.  ``save_adam_moments`` (LoRA only) keeps
    each checkpoint's Adam moments next to its adapter; ``device``: the job family's precision,
    attention and checkpointing (``scoder.device.DeviceSettings.train_settings``)."""
    from scoder.data import to_chat

    records = [to_chat(s, format) for s in samples]
    if not records:
        raise ValueError(f"no training examples for {model}: the upstream stage produced no samples")
    settings = dict(train, **(device or {}), num_checkpoints=len(outputs), lora=lora)
    if save_adam_moments:  # only then, so runs without moments keep their fingerprints
        settings["save_adam_moments"] = True
    paths = fit("sft", records, progress, model=model, settings=settings, gpus=gpus)
    return [publish(src, dst) for src, dst in zip(paths, outputs)]


def train_model(method: str, records: list[dict], *, init: str, out_dir: str, progress: str | Path,
                train: dict, beta: float | None = None, gpus: int = 0, device: dict | None = None) -> str:
    """SODA: fine-tune ``init`` on ``records`` (chat examples for sft, preference records for
    dpo) and publish the trained model at ``out_dir``; returns ``out_dir``.  ``device`` as for
    ``train_stage``."""
    if method not in ("sft", "dpo"):
        raise ValueError(f"method must be sft or dpo, got {method!r}")
    if not records:
        raise ValueError(f"no {method.upper()} examples for {init}: the upstream stage kept none "
                         "(see its stats.json for parse failures)")
    settings = dict(train, **(device or {}), **({"beta": beta} if method == "dpo" else {"num_checkpoints": 1}))
    return publish(fit(method, records, progress, model=init, settings=settings, gpus=gpus)[0], out_dir)
