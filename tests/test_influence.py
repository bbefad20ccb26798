"""Influence estimation: fast per-example projected gradients match the exact reference,
features resume shard by shard, and the selection ranks D_p-like candidates first."""
import math
import os

import numpy as np
import pytest
import torch

from scoder.influence import (BLOCK_ROWS, checkpoint_lr_weights, encode_chat, gradients_stage, influence_from_features,
                              influence_values, load_features, projected_gradients, rademacher_block, select_top_k,
                              weighted_influence)
from scoder.influence.gradients import (PerExampleGradients, collate, exact_gradient, load_reference_model,
                                        load_tokenizer, lora_parameters)
from scoder.influence.projection import RademacherProjector, block_seed
from scoder.influence.select import select
from scoder.influence.structured import FACTORS, StructuredProjection, fit_factors
from scoder.io import read_json, write_json

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Micro-model matmuls are tiny: on a shared 2-core machine OpenMP threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def chat(i, user, answer):
    return {"id": f"x{i}", "messages": [{"role": "user", "content": user},
                                        {"role": "assistant", "content": answer}]}


def code_example(i):
    return chat(i, f"Write a Python function add_{i}(a, b) that returns the sum of a and b plus {i}.",
                f"def add_{i}(a, b):\n    \"\"\"Sum of a and b plus {i}.\"\"\"\n    return a + b + {i}\n")


def prose_example(i):
    words = ["la", "maison", "verte", "du", "village", "est", "tres", "belle", "au", "printemps"]
    return chat(i, "Raconte une histoire courte " + " ".join(words[i % 3:]),
                " ".join(words[(i + j) % len(words)] for j in range(18 + i)))


def make_adapter(micro_model, path, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(micro_model),
                                LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False))
    peft_model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def adapter(micro_model, tmp_path_factory):
    """A tiny random LoRA (B nonzero) on q/k/v/o of the micro model."""
    return make_adapter(micro_model, tmp_path_factory.mktemp("adapter") / "lora")


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_fast_matches_exact_and_the_dense_projection(micro_model, adapter, tmp_path):
    records = [code_example(i) for i in range(3)] + [prose_example(i) for i in range(3)]
    # a projection batch of 4 filled by forward/backward passes of 2 examples each
    fast = load_features(projected_gradients(micro_model, adapter, records, str(tmp_path / "fast"), k=512,
                                             batch_size=4, grad_batch_size=2, method="fast"))
    exact = load_features(projected_gradients(micro_model, adapter, records, str(tmp_path / "exact"), k=512,
                                              method="exact"))
    assert fast.shape == exact.shape == (6, 512) and fast.dtype == np.float32
    assert cosines(fast, exact).min() >= 0.999

    # the per-example gradients themselves, and P assembled densely from its blocks
    tok = load_tokenizer(micro_model, adapter)
    model = load_reference_model(micro_model, adapter, "cpu", torch.float32)
    params = lora_parameters(model)
    assert all(("lora_A" in n or "lora_B" in n) for n, _ in params)
    encoded = [encode_chat(tok, r, 1024) for r in records]
    batch = collate(encoded, tok.pad_token_id, "cpu")  # mixed lengths: padding must not leak
    per_example = PerExampleGradients(model, params)(batch)
    for i, e in enumerate(encoded):
        g = exact_gradient(model, params, collate([e], tok.pad_token_id, "cpu"))
        assert torch.allclose(per_example[i], g, rtol=1e-4, atol=1e-6)
    assert all(p.requires_grad for _, p in params)  # the fast path gives the LoRA weights back trainable
    dim = per_example.shape[1]
    dense = torch.cat([rademacher_block(0, b, min(BLOCK_ROWS, dim - b * BLOCK_ROWS), 512, dtype=torch.float32)
                       for b in range(math.ceil(dim / BLOCK_ROWS))])
    assert set(dense.unique().tolist()) == {-1.0, 1.0}
    assert cosines((per_example @ dense).numpy() / math.sqrt(512), exact).min() > 0.99999


def test_only_the_response_carries_loss(micro_model):
    tok = load_tokenizer(micro_model)
    e = encode_chat(tok, chat(0, "Say hi.", "hi there"), 1024)
    answer = [t for t, lab in zip(e["input_ids"], e["labels"]) if lab != -100]
    assert tok.decode(answer).startswith("hi there") and e["n_response_tokens"] == len(answer)
    assert encode_chat(tok, chat(0, "Say hi. " * 50, "hi"), 16)["n_response_tokens"] == 0


def test_shards_resume_and_settings_are_checked(micro_model, adapter, tmp_path):
    records = [code_example(i) for i in range(5)]
    out = tmp_path / "feats"
    projected_gradients(micro_model, adapter, records, str(out), k=64, batch_size=2, shard_size=2)
    full = load_features(str(out))
    assert sorted(p.name for p in out.glob("shard_*.npy")) == ["shard_00000.npy", "shard_00001.npy",
                                                               "shard_00002.npy"]
    # an interrupted run: the last shard is missing and the manifest is not complete
    stamp = os.stat(out / "shard_00000.npy").st_mtime_ns
    (out / "shard_00002.npy").unlink()
    write_json(out / "manifest.json", {**read_json(out / "manifest.json"), "complete": False})
    with pytest.raises(ValueError, match="not complete"):
        load_features(str(out))
    projected_gradients(micro_model, adapter, records, str(out), k=64, batch_size=2, shard_size=2)
    assert os.stat(out / "shard_00000.npy").st_mtime_ns == stamp  # finished shards are not recomputed
    np.testing.assert_allclose(load_features(str(out)), full, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="other settings"):
        projected_gradients(micro_model, adapter, records, str(out), k=32, shard_size=2)


@pytest.mark.parametrize("projection", ["dense", "structured"])
def test_selection_ranks_dp_like_candidates_first(micro_model, adapter, tmp_path, projection):
    d_p = [code_example(i) for i in range(6)]
    near = [code_example(i) for i in range(20, 24)]  # copies of D_p-like samples
    unrelated = [prose_example(i) for i in range(4)]
    candidates = [x for pair in zip(unrelated, near) for x in pair]  # interleaved
    kw = dict(k=256, projection=projection, grad_batch_size=3)
    gradients_stage(micro_model, adapter, d_p, str(tmp_path / "dp"), **kw)
    shards = [str(tmp_path / "c0"), str(tmp_path / "c1")]  # the candidates come in two shards
    if projection == "structured":  # candidates project with the factors fit on D_p (the plan's wiring)
        kw["factors_from"] = str(tmp_path / "dp")
    gradients_stage(micro_model, adapter, candidates[:5], shards[0], **kw)
    gradients_stage(micro_model, adapter, candidates[5:], shards[1], **kw)
    selected, values = select(candidates, 4, "influence", features=shards, reference_features=str(tmp_path / "dp"))
    assert len(values) == len(candidates)
    assert sorted(r["id"] for r in selected) == sorted(r["id"] for r in near)
    assert [r["influence"] for r in selected] == sorted((r["influence"] for r in selected), reverse=True)


def test_influence_values_and_top_k_semantics(tmp_path):
    ref = np.array([[1.0, 0.0], [1.0, 2.0]])  # mean direction (1, 1)
    cand = np.array([[2.0, 2.0], [1.0, -1.0], [0.0, 0.0], [-3.0, -3.0], [5.0, 5.0]])
    v = influence_values(cand, ref)
    np.testing.assert_allclose(v[[0, 1, 3, 4]], [1.0, 0.0, -1.0, 1.0], atol=1e-12)
    assert np.isnan(v[2])
    records = [{"id": str(i)} for i in range(5)]
    assert [r["id"] for r in select_top_k(records, v, 5)] == ["0", "4", "1", "3", "2"]  # tie: input order
    assert select_top_k(records, v, 2)[1] == {"id": "4", "influence": pytest.approx(1.0)}
    assert "influence" not in records[0]
    # LESS's multi-checkpoint combination, weighted by each checkpoint's mean learning rate
    for i, (step, lrs) in enumerate([(2, [3e-5, 1e-5]), (4, [1e-5, 1e-5])]):
        write_json(tmp_path / f"c{i}" / "trainer_state.json", {"global_step": step, "log_history": [
            {"step": step - 1, "learning_rate": lrs[0]}, {"step": step, "learning_rate": lrs[1]}]})
    w = checkpoint_lr_weights([str(tmp_path / "c0"), str(tmp_path / "c1")])
    assert w == pytest.approx([2e-5, 1e-5])
    combined = weighted_influence([cand, -cand], [ref, ref], w)
    np.testing.assert_allclose(combined[[0, 1, 3]], [1 / 3, 0.0, -1 / 3], atol=1e-12)


def test_adam_preconditioned_features(micro_model, adapter, tmp_path):
    """LESS's option: candidate gradients turned into one Adam step using the reference training's moments."""
    records = [code_example(i) for i in range(2)] + [prose_example(0)]
    model = load_reference_model(micro_model, adapter, "cpu", torch.float32)
    params = lora_parameters(model)
    tok = load_tokenizer(micro_model, adapter)
    g = exact_gradient(model, params, collate([encode_chat(tok, records[0], 1024)], tok.pad_token_id, "cpu"))
    optimizer = torch.optim.AdamW([p for _, p in params], lr=1e-3)
    for _, p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")  # what HF Trainer writes
    kw = dict(k=128, optimizer_state=str(tmp_path / "optimizer.pt"))
    fast = load_features(projected_gradients(micro_model, adapter, records, str(tmp_path / "f"), **kw))
    exact = load_features(projected_gradients(micro_model, adapter, records, str(tmp_path / "e"),
                                              method="exact", **kw))
    plain = load_features(projected_gradients(micro_model, adapter, records, str(tmp_path / "p"), k=128))
    assert cosines(fast, exact).min() >= 0.999
    assert cosines(exact, plain).max() < 0.99  # the preconditioning changes the direction

    state = optimizer.state_dict()["state"]
    m = torch.cat([state[i]["exp_avg"].reshape(-1) for i in range(len(params))])
    v = torch.cat([state[i]["exp_avg_sq"].reshape(-1) for i in range(len(params))])
    expected = (0.9 * m + 0.1 * g) / (0.999 * v + 0.001 * g ** 2 + 1e-8).sqrt()
    projected = RademacherProjector(len(g), 128).project(expected[None]).numpy()
    assert cosines(projected, exact[:1])[0] > 0.9999

    # the gradients stage reads the moments from the reference checkpoint, HF's optimizer.pt or named safetensors
    import shutil

    from safetensors.torch import save_file

    ckpt = tmp_path / "reference"
    shutil.copytree(adapter, ckpt)
    with pytest.raises(FileNotFoundError, match="Adam moments"):
        gradients_stage(micro_model, str(ckpt), records, str(tmp_path / "s0"), k=128, adam=True)
    save_file({f"{name}.{moment}": state[i][moment].contiguous() for i, (name, _) in enumerate(params)
               for moment in ("exp_avg", "exp_avg_sq")}, str(ckpt / "adam_moments.safetensors"))
    staged = load_features(gradients_stage(micro_model, str(ckpt), records, str(tmp_path / "s1"), k=128,
                                           adam=True) + "/ckpt1")
    assert cosines(staged, fast).min() > 0.99999


def test_rademacher_signs_are_the_documented_bits():
    rows, k = 3, 40  # 120 entries: two 64-bit words, eight 16-bit lanes
    P = rademacher_block(7, 5, rows, k, dtype=torch.float32)
    gen = torch.Generator()
    gen.manual_seed(block_seed(7, 5))
    words = torch.empty(2, dtype=torch.int64)
    words.random_(-2**63, None, generator=gen)
    lanes = words.view(torch.int16).numpy().view(np.uint16)
    bits = np.array([[(int(lane) >> (15 - s)) & 1 for lane in lanes] for s in range(16)]).reshape(-1)[:rows * k]
    np.testing.assert_array_equal(P.numpy().reshape(-1), np.where(bits == 1, -1.0, 1.0))
    # and it behaves as a Rademacher matrix: balanced, near-orthogonal columns, blocks independent
    big = rademacher_block(0, 0, 2048, 64, dtype=torch.float32)
    assert abs(float(big.mean())) < 0.02
    assert float((big.T @ big / 2048 - torch.eye(64)).abs().max()) < 0.15
    assert not torch.equal(big, rademacher_block(0, 1, 2048, 64, dtype=torch.float32))
    assert not torch.equal(big, rademacher_block(1, 0, 2048, 64, dtype=torch.float32))  # the seed matters
    workspace = torch.empty(16 * 4 * 2048, dtype=torch.int16)
    assert torch.equal(rademacher_block(0, 0, 2048, 64, workspace=workspace).float(), big)


def test_structured_projection_is_its_kronecker_definition(micro_model, adapter):
    records = [code_example(i) for i in range(3)] + [prose_example(i) for i in range(3)]
    tok = load_tokenizer(micro_model, adapter)
    model = load_reference_model(micro_model, adapter, "cpu", torch.float32)
    params = lora_parameters(model)
    batch = collate([encode_chat(tok, r, 1024) for r in records], tok.pad_token_id, "cpu")
    full = PerExampleGradients(model, params)(batch).double()

    def projection(seed, pca, fit=(batch,)):
        return StructuredProjection(model, params, fit_factors(model, params, fit, factor=8, pca=pca, seed=seed))

    structured = projection(3, pca=2)
    # 8 per side, the identity on the rank side (4 < 8): 16 matrices of 8 x 4 or 4 x 8
    assert structured.dim == len(params) * 32
    features = structured(batch).double()  # stage 1, never forms `full`
    matrix = structured.dense_matrix().double()  # block-diagonal Kronecker products of the factors
    torch.testing.assert_close(features, full @ matrix, rtol=1e-4, atol=1e-4 * float(features.abs().max()))
    assert all(p.requires_grad for _, p in params)
    # the PCA columns are the top eigenvectors of K-FAC's input covariance, the rest random and orthogonal to them
    captured = {}
    handles = [module.register_forward_hook(lambda m, i, o, j=j: captured.update({j: i[0].detach()}))
               for j, (module, _) in enumerate(structured.layers) if module.in_features > 8]
    PerExampleGradients(model, params)(batch)
    for h in handles:
        h.remove()
    assert len(captured) == len(params) // 2  # the lora_A layers (their input side is the model width)
    for j, x in captured.items():
        x = (x * batch["attention_mask"][..., None]).flatten(0, 1).double()
        top = torch.linalg.eigh(x.T @ x)[1][:, -2:]
        p_in = structured.factors[j][1].double()
        torch.testing.assert_close(p_in[:, :2] @ p_in[:, :2].T, top @ top.T, atol=1e-4, rtol=0)
    assert float((p_in[:, :2].T @ p_in[:, 2:]).abs().max()) < 1e-5
    # the gradients' inner products are kept in expectation over seeds, purely random or with PCA directions
    gram = full @ full.T
    scale = torch.outer(gram.diag().sqrt(), gram.diag().sqrt())
    seeds = 100
    for pca in (0, 2):
        mean_gram = sum((full @ m) @ (full @ m).T for m in (projection(s, pca).dense_matrix().double()
                                                              for s in range(seeds))) / seeds
        assert float(((mean_gram - gram) / scale).abs().max()) < 0.15, pca  # measured 0.05 at 200 seeds
    with pytest.raises(ValueError, match="no exact method"):
        projected_gradients(micro_model, adapter, records, "unused", k=64, projection="structured", method="exact")
    with pytest.raises(ValueError, match="pca < factor"):
        projected_gradients(micro_model, adapter, records, "unused", k=64, projection="structured",
                            structured={"factor": 4, "pca": 4})


def test_structured_candidates_use_the_factors_fit_on_d_p(micro_model, adapter, tmp_path):
    d_p = [code_example(i) for i in range(4)]
    candidates = [code_example(20), prose_example(0)]
    kw = dict(k=64, projection="structured", structured={"factor": 8, "pca": 2, "fit_examples": 2})
    gradients_stage(micro_model, adapter, d_p, str(tmp_path / "dp"), **kw)
    dp_factors = tmp_path / "dp" / "ckpt1" / FACTORS
    assert dp_factors.exists()
    gradients_stage(micro_model, adapter, candidates, str(tmp_path / "c"), factors_from=str(tmp_path / "dp"), **kw)
    assert not (tmp_path / "c" / "ckpt1" / FACTORS).exists()
    own = load_features(gradients_stage(micro_model, adapter, candidates, str(tmp_path / "own"), **kw) + "/ckpt1")
    shared = load_features(str(tmp_path / "c" / "ckpt1"))
    assert not np.allclose(own, shared)  # fit on the candidates themselves: another projection
    with pytest.raises(ValueError, match="recompute D_p"):
        gradients_stage(micro_model, adapter, candidates, str(tmp_path / "c2"), factors_from=str(tmp_path / "dp"),
                        **{**kw, "structured": {"factor": 8, "pca": 1}})
    with pytest.raises(FileNotFoundError, match="Kronecker factors"):
        gradients_stage(micro_model, adapter, candidates, str(tmp_path / "c3"), factors_from=str(tmp_path / "c"),
                        **kw)


def test_checkpoints_weighted_by_learning_rate_and_shards_concatenated(micro_model, tmp_path):
    reference = tmp_path / "reference"
    for m in (1, 2):
        make_adapter(micro_model, reference / f"ckpt{m}", seed=m)
    log = tmp_path / "train_log.json"
    write_json(log, {"checkpoint_steps": [2, 4], "loss_history": [
        {"step": 1, "learning_rate": 4e-5}, {"step": 2, "learning_rate": 2e-5},
        {"step": 3, "learning_rate": 1e-5}, {"step": 4, "learning_rate": 1e-5}]})
    d_p = [code_example(i) for i in range(4)]
    candidates = [code_example(20), prose_example(0), code_example(21), prose_example(1), prose_example(2)]
    kw = dict(train_log=str(log), k=128)
    dp = gradients_stage(micro_model, str(reference), d_p, str(tmp_path / "dp"), **kw)
    shards = [gradients_stage(micro_model, str(reference), candidates[:2], str(tmp_path / "c0"), **kw),
              gradients_stage(micro_model, str(reference), candidates[2:], str(tmp_path / "c1"), **kw)]
    assert read_json(tmp_path / "dp" / "checkpoints.json")["weights"] == pytest.approx([3e-5, 1e-5])
    per_ckpt = [influence_values(np.concatenate([load_features(f"{c}/ckpt{m}") for c in shards]),
                                 load_features(f"{dp}/ckpt{m}")) for m in (1, 2)]
    assert not np.allclose(per_ckpt[0], per_ckpt[1])  # the checkpoints are different models
    np.testing.assert_allclose(influence_from_features(shards, dp), 0.75 * per_ckpt[0] + 0.25 * per_ckpt[1])
    # candidates scored under another reference are refused
    other = gradients_stage(micro_model, str(reference / "ckpt1"), candidates[:2], str(tmp_path / "o"), k=128)
    with pytest.raises(ValueError, match="different reference checkpoints"):
        influence_from_features([other], dp)
    with pytest.raises(ValueError, match="training log"):
        gradients_stage(micro_model, str(reference), d_p, str(tmp_path / "x"), k=128)


def test_selection_alternatives_of_the_ablations():
    candidates = [{"id": str(i), "score": s} for i, s in enumerate([3.0, 9.0, 5.0, 1.0])]
    assert [r["id"] for r in select(candidates, 2, "score")[0]] == ["1", "2"]
    perplexity = [4.0, None, 2.0, 8.0]  # None: no response tokens, never preferred
    low, values = select(candidates, 3, "low_perplexity", perplexity=perplexity)
    assert [r["id"] for r in low] == ["2", "0", "3"] and values == perplexity
    assert [r["id"] for r in select(candidates, 2, "high_perplexity", perplexity=perplexity)[0]] == ["3", "0"]
    many = [{"id": str(i)} for i in range(30)]
    first = [r["id"] for r in select(many, 10, "random", seed=1)[0]]
    assert first == [r["id"] for r in select(many, 10, "random", seed=1)[0]] and len(set(first)) == 10
    assert first != [r["id"] for r in select(many, 10, "random", seed=2)[0]]
    with pytest.raises(ValueError, match="bootstrap.selection"):
        select(candidates, 2, "longest")
