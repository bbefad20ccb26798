"""Gradient features on the GPU as the gradients rule computes them (``gradients_stage``): the
paper's dense projection (fast and exact methods) and the structured one, equal to the CPU's
(cosine >= 0.999 per example) on the same examples, adapter and projection seed.

A CUDA run draws its Rademacher matrix from CUDA's generator (``scoder.influence.projection``),
so the CPU reference here is the CPU's per-example gradients (or Kronecker sketches) projected
by that same matrix: what differs is only where the gradients were computed.  The reference
LoRA is the paper's (r=128 on q/k/v/o); k is 8192 on a GPU (1024 in a rehearsal)."""
import numpy as np
import pytest
import torch

from gpu_support import chat_examples, chats, rehearsal
from scoder.device import DeviceSettings
from scoder.influence import gradients_stage, load_features
from scoder.influence.gradients import collate, encode_chat, exact_gradient, load_reference_model, load_tokenizer, \
    lora_parameters
from scoder.influence.projection import RademacherProjector
from scoder.influence.structured import FACTORS, StructuredProjection, load_factors

MAX_LENGTH = 512


def k() -> int:
    return 1024 if rehearsal() else 8192


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def records():
    return chats(chat_examples(8))


def cpu_reference(model, adapter, records, device, sketch=None) -> np.ndarray:
    """Per-example float32 gradients (or their Kronecker sketches) on CPU, projected by the matrix
    a run on ``device`` uses."""
    tok = load_tokenizer(model, adapter)
    ref = load_reference_model(model, adapter, "cpu", torch.float32)
    params = lora_parameters(ref)
    rows = []
    structured = StructuredProjection(ref, params, sketch) if sketch is not None else None
    for record in records:
        batch = collate([encode_chat(tok, record, MAX_LENGTH)], tok.pad_token_id, "cpu")
        rows.append(structured(batch)[0] if structured is not None else exact_gradient(ref, params, batch))
    grads = torch.stack(rows)
    return RademacherProjector(grads.shape[1], k(), 0, device, torch.float32).project(grads.to(device)).cpu().numpy()


def features(model, adapter, records, out, device, **settings) -> np.ndarray:
    gradients_stage(model, adapter, records, str(out), k=k(), seed=0, max_length=MAX_LENGTH, device=device,
                    batch_size=4, grad_batch_size=2, **settings)
    return load_features(str(out / "ckpt1"))


def test_dense_features_equal_the_cpu_ones(embedded_model, reference_adapter, records, device, cuda, tmp_path):
    family = DeviceSettings(dtype="float32", attn_implementation="sdpa")
    fast = features(embedded_model, reference_adapter, records, tmp_path / "fast", device, method="fast",
                    **family.model_settings())
    exact = features(embedded_model, reference_adapter, records, tmp_path / "exact", device, method="exact",
                     **family.model_settings())
    reference = cpu_reference(embedded_model, reference_adapter, records, device)
    assert fast.shape == exact.shape == (len(records), k())
    assert cosines(exact, reference).min() >= 0.999
    assert cosines(fast, reference).min() >= 0.999
    # what the cluster runs: the gradients family's bf16 weights (rounding, not another projection)
    bf16 = features(embedded_model, reference_adapter, records, tmp_path / "bf16", device, method="fast",
                    dtype="bfloat16", attn_implementation="sdpa")
    print(f"dense features, bf16 weights vs the float32 CPU reference: min cosine {cosines(bf16, reference).min():.4f}")
    assert cosines(bf16, reference).min() >= 0.99


def test_structured_features_equal_the_cpu_ones(embedded_model, reference_adapter, records, device, tmp_path):
    structured = {"factor": 64, "pca": 32, "fit_examples": 4}
    family = DeviceSettings(dtype="float32", attn_implementation="sdpa").model_settings()
    dp, candidates = records[:4], records[4:]
    # D_p's job fits the Kronecker factors; the candidates' job projects with them
    features(embedded_model, reference_adapter, dp, tmp_path / "dp", device, projection="structured",
             structured=structured, **family)
    assert (tmp_path / "dp" / "ckpt1" / FACTORS).exists()
    cand = features(embedded_model, reference_adapter, candidates, tmp_path / "cand", device,
                    projection="structured", structured=structured, factors_from=str(tmp_path / "dp"), **family)
    factors, _ = load_factors(tmp_path / "dp" / "ckpt1" / FACTORS)
    reference = cpu_reference(embedded_model, reference_adapter, candidates, device, sketch=factors)
    assert cosines(cand, reference).min() >= 0.999


def test_perplexity_on_the_device_equals_the_cpu(embedded_model, reference_adapter, records, device):
    """Figure 4's perplexity selectors (the gradients family): the same values where the model runs."""
    from scoder.perplexity import perplexities

    samples = [{"id": r["id"], "problem": r["messages"][0]["content"], "solution": r["messages"][1]["content"]}
               for r in records]
    on_device = perplexities(embedded_model, reference_adapter, samples, max_length=MAX_LENGTH, device=device,
                             dtype="float32", attn_implementation="sdpa")
    on_cpu = perplexities(embedded_model, reference_adapter, samples, max_length=MAX_LENGTH, device="cpu")
    assert on_device == pytest.approx(on_cpu, rel=1e-3)
