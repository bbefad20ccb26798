"""Gradient-based influence estimation (SCoder §3.3, eq. 3-4; after LESS and TRAK).

A LoRA reference model trained on the proprietary samples D_p gives, for every chat
example d, the gradient of its response loss w.r.t. the LoRA weights; a seeded Rademacher
projection maps it to k dims; V(d) is the cosine between d's projected gradient and the
mean projected gradient of D_p, and the top-K candidates by V(d) are kept::

    projected_gradients(model, adapter, candidates, "cand_feats", k=8192)
    projected_gradients(model, adapter, d_p, "dp_feats", k=8192)
    values = influence_values(load_features("cand_feats"), load_features("dp_feats"))
    selected = select_top_k(candidates, values, k=20_000)

Benchmark on SmolLM2-135M: ``python bench/influence.py``.
"""
from scoder.influence.features import load_features, load_manifest, projected_gradients
from scoder.influence.gradients import adam_precondition, encode_chat, lora_parameters
from scoder.influence.projection import BLOCK_ROWS, RademacherProjector, rademacher_block
from scoder.influence.select import (checkpoint_lr_weights, influence_values, select_top_k,
                                     weighted_influence)

__all__ = ["projected_gradients", "load_features", "load_manifest", "influence_values", "select_top_k",
           "weighted_influence", "checkpoint_lr_weights", "encode_chat", "lora_parameters",
           "adam_precondition", "RademacherProjector", "rademacher_block", "BLOCK_ROWS"]
