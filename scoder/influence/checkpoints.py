"""The gradients stage over the reference model's checkpoints, weighted as in LESS.

A reference folder is either one PEFT adapter (``adapter_config.json`` inside: the paper's single
theta_lora) or adapters ``ckpt1`` ... ``ckptM`` exported during its training (LESS: one per
epoch).  ``gradients_stage`` writes the features of every checkpoint to ``out_dir/ckpt{m}/``
(``projected_gradients``) and ``out_dir/checkpoints.json``: the checkpoint names and LESS's
weights, each checkpoint's mean learning rate over the training steps since the previous one
(read from the reference training's ``train_log.json``).  ``scoder.influence.select`` combines
them: V(d) = sum_m w_m V_m(d) with the weights normalised to sum 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.influence.features import projected_gradients
from scoder.influence.gradients import find_optimizer_state
from scoder.influence.structured import FACTORS
from scoder.io import read_json, write_json

CHECKPOINTS = "checkpoints.json"


def reference_checkpoint_dirs(adapter: str, num_checkpoints: int) -> list[str]:
    """Where the reference stage publishes its M adapters: one is the folder itself, several are
    its ckpt1..ckptM (the layout ``reference_checkpoints`` reads)."""
    if num_checkpoints == 1:
        return [adapter]
    return [f"{adapter}/ckpt{m}" for m in range(1, num_checkpoints + 1)]


def reference_checkpoints(reference: str) -> list[Path]:
    """The reference's adapters in training order: the folder itself, or its ckpt1..ckptM."""
    folder = Path(reference)
    if (folder / "adapter_config.json").exists():
        return [folder]
    ckpts = sorted((p for p in folder.glob("ckpt*") if p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))
    if not ckpts or not all((c / "adapter_config.json").exists() for c in ckpts):
        raise FileNotFoundError(f"{reference} is neither a PEFT adapter nor a folder of ckpt<m> adapters")
    if [int(c.name[4:]) for c in ckpts] != list(range(1, len(ckpts) + 1)):
        raise ValueError(f"{reference}: checkpoints {[c.name for c in ckpts]} are not ckpt1..ckpt{len(ckpts)}")
    return ckpts


def lr_weights(log_history: Sequence[dict], checkpoint_steps: Sequence[int]) -> list[float]:
    """Each checkpoint's weight as in LESS: the mean learning rate logged at the steps after the
    previous checkpoint up to this one (``log_history`` entries with ``step`` and ``learning_rate``)."""
    weights, previous = [], 0
    for step in checkpoint_steps:
        lrs = [e["learning_rate"] for e in log_history if "learning_rate" in e and previous < e.get("step", -1) <= step]
        if not lrs:
            raise ValueError(f"no learning rate logged between steps {previous} and {step}")
        weights.append(float(np.mean(lrs)))
        previous = step
    return weights


def checkpoint_weights(num_checkpoints: int, train_log: str | None) -> list[float]:
    """LESS's weights of the reference's checkpoints from its ``train_log.json`` (one checkpoint: [1.0])."""
    if num_checkpoints == 1:
        return [1.0]
    if train_log is None:
        raise ValueError(f"{num_checkpoints} reference checkpoints need the training log for their weights")
    log = read_json(train_log)
    steps = log.get("checkpoint_steps", [])
    if len(steps) != num_checkpoints:
        raise ValueError(f"{train_log} lists {len(steps)} checkpoint steps for {num_checkpoints} checkpoints")
    return lr_weights(log.get("loss_history", []), steps)


def gradients_stage(model: str, reference: str, records: list[dict], out_dir: str, *,
                    train_log: str | None = None, adam: bool = False, factors_from: str | None = None,
                    **settings) -> str:
    """Features of ``records`` under every checkpoint of ``reference`` (``settings`` as for
    ``projected_gradients``); ``adam`` uses each checkpoint's saved Adam moments (LESS, candidates);
    ``factors_from`` (D_p's features folder, structured projection) gives each checkpoint the
    Kronecker factors fit on D_p under it."""
    ckpts = reference_checkpoints(reference)
    weights = checkpoint_weights(len(ckpts), train_log)
    names = [f"ckpt{m}" for m in range(1, len(ckpts) + 1)]
    for name, ckpt in zip(names, ckpts):
        print(f"projected gradients under {ckpt}", flush=True)
        projected_gradients(model, str(ckpt), records, str(Path(out_dir) / name),
                            optimizer_state=str(find_optimizer_state(ckpt)) if adam else None,
                            factors=str(Path(factors_from) / name / FACTORS) if factors_from else None, **settings)
    write_json(Path(out_dir) / CHECKPOINTS, {"checkpoints": names, "weights": weights, "adam": adam})
    return out_dir
