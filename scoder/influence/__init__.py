"""Gradient-based influence estimation (SCoder §3.3, eq. 3-4; after LESS and TRAK).

A LoRA reference model trained on the proprietary samples D_p gives, for every chat
example d, the gradient of its response loss w.r.t. the LoRA weights; a seeded Rademacher
projection maps it to k dims; V(d) is the cosine between d's projected gradient and the
mean projected gradient of D_p, and the top-K candidates by V(d) are kept::

    gradients_stage(model, reference, candidates, "cand_feats", k=8192)
    gradients_stage(model, reference, d_p, "dp_feats", k=8192)
    values = influence_from_features("cand_feats", "dp_feats")
    selected = select_top_k(candidates, values, size=20_000)

Options beyond the paper: LESS's Adam-preconditioned candidate gradients and several
reference checkpoints weighted by their learning rate (``checkpoints``), and a structured
Kronecker-factored projection (``structured``).  Benchmark: ``python bench/influence.py``.
"""
from scoder.influence.checkpoints import checkpoint_weights, gradients_stage, reference_checkpoints
from scoder.influence.features import load_features, load_manifest, projected_gradients
from scoder.influence.gradients import adam_precondition, encode_chat, lora_parameters
from scoder.influence.projection import BLOCK_ROWS, RademacherProjector, rademacher_block
from scoder.influence.select import (checkpoint_lr_weights, influence_from_features, influence_values,
                                     load_feature_sets, select_top_k, weighted_influence)
from scoder.influence.structured import FACTORS, StructuredProjection, fit_factors

__all__ = ["projected_gradients", "gradients_stage", "load_features", "load_manifest", "load_feature_sets",
           "influence_values", "influence_from_features", "select_top_k", "weighted_influence",
           "checkpoint_lr_weights", "checkpoint_weights", "reference_checkpoints", "encode_chat",
           "lora_parameters", "adam_precondition", "RademacherProjector", "rademacher_block", "BLOCK_ROWS",
           "StructuredProjection", "FACTORS", "fit_factors"]
