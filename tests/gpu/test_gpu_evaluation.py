"""The evaluate stage on the GPU: generated answers run in the sandbox (EvalPlus on HumanEval) while
models hold the GPU, and a sandboxed program sees no GPU."""
import json

import pytest
import torch

from scoder.benchmarks.common import Protocol
from scoder.benchmarks.evalplus_bench import HUMANEVAL_PACKAGE, load_problems, score
from scoder.device import DeviceSettings
from scoder.evaluate import evaluate_stage
from scoder.llm import make_generator
from scoder.sandbox import run_python

EVALUATION = {"style": "instruct", "sampling": {"n": 1, "temperature": 0.0, "top_p": 1.0, "k": [1], "seed": 0},
              "max_new_tokens": 48, "workers": 2, "humaneval": {"limit": 3}}


@pytest.fixture(scope="module")
def holder(embedded_model, device):
    """A model holding the GPU the whole time (as a generate job's does)."""
    spec = DeviceSettings(dtype="bfloat16").generator_spec({"backend": "transformers", "model": embedded_model,
                                                             "device": device, "batch_size": 8})
    return make_generator(spec)


def test_generated_answers_are_scored_in_the_sandbox(holder, embedded_model, device, cuda, tmp_path):
    spec = DeviceSettings(dtype="bfloat16", attn_implementation="sdpa").generator_spec(
        {"backend": "transformers", "device": device, "batch_size": 8})
    scores = evaluate_stage(embedded_model, spec, EVALUATION, tmp_path / "scores.json", tmp_path / "completions.jsonl",
                            progress_dir=tmp_path / "progress")
    base = scores["benchmarks"]["humaneval"]["base"]
    assert base["n"] == 3 and 0 <= base["pass@1"] <= 100
    records = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["reason"] for r in records)
    assert not any("sandbox" in r["reason"] or "broke EvalPlus" in r["reason"] for r in records)
    if cuda:
        assert torch.cuda.memory_allocated() > 0 and next(holder.lm.parameters()).is_cuda


def test_canonical_solutions_pass_while_the_gpu_is_held(holder, cuda):
    problems, has_plus, source = load_problems("humaneval", HUMANEVAL_PACKAGE, limit=3)
    canonical = [[p["canonical_solution"]] for p in problems]   # base style: the prompt is prepended
    result = score("humaneval", problems, canonical, Protocol.from_settings({**EVALUATION, "style": "base"}),
                   has_plus=has_plus, source=source)
    assert result["scores"]["base"]["pass@1"] == 100.0
    if cuda:
        assert torch.cuda.memory_allocated() > 0


def test_a_sandboxed_program_sees_no_gpu(holder):
    probe = ("import os, json\nout = {'visible': os.environ.get('CUDA_VISIBLE_DEVICES')}\n"
             "try:\n    import torch\n    out['cuda'] = torch.cuda.is_available()\nexcept ImportError:\n"
             "    out['cuda'] = None\nprint(json.dumps(out))\n")
    result = run_python(probe, timeout=120, memory_mb=None)
    assert result.passed, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["visible"] == "" and seen["cuda"] in (False, None)
