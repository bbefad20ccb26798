"""The transformers generation backend on the GPU, as the generate family runs it: the model in
the family's bf16 with sdpa attention, batched (several batches, left padding), sampled with
seeds, scored choices independent of the batch, raw completion with stop strings."""
import pytest
import torch

from gpu_support import chat_examples
from scoder.device import DeviceSettings
from scoder.llm import make_generator

FAMILY = DeviceSettings(family="tests.gpu.generate", dtype="bfloat16", attn_implementation="sdpa")


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": s["problem"]}] for s in chat_examples(n)]


@pytest.fixture(scope="module")
def generator(embedded_model, device):
    spec = FAMILY.generator_spec({"backend": "transformers", "model": embedded_model, "device": device,
                                  "batch_size": 8})
    return make_generator(spec)


def test_the_model_runs_on_the_device_in_the_family_dtype(generator, device):
    p = next(generator.lm.parameters())
    assert (p.device.type, p.dtype, generator.lm.config._attn_implementation) == (device, torch.bfloat16, "sdpa")


def test_batched_sampling_is_seeded_and_counted(generator):
    convs = conversations(20)   # 3 batches of up to 8, prompts of different lengths
    before = generator.usage
    out = generator.generate(convs, temperature=0.8, top_p=0.95, max_new_tokens=24, n=2, seed=5)
    assert len(out) == 20 and all(len(group) == 2 and all(isinstance(t, str) for t in group) for group in out)
    after = generator.usage
    assert after["requests"] - before["requests"] == 20
    assert 0 < after["completion_tokens"] - before["completion_tokens"] <= 20 * 2 * 24
    assert generator.generate(convs, temperature=0.8, top_p=0.95, max_new_tokens=24, n=2, seed=5) == out
    greedy = generator.generate(convs[:4], max_new_tokens=16, n=3)
    assert all(g[0] == g[1] == g[2] for g in greedy)


def test_choice_scores_do_not_depend_on_the_batch(generator):
    convs = conversations(9)
    batched = generator.score_choices(convs, ["Yes", "No"])
    alone = generator.score_choices(convs[-1:], ["Yes", "No"])[0]
    assert all(lp < 0 for row in batched for lp in row.values())
    # left padding in a batch of 8 vs alone: bf16 rounding only
    assert batched[-1]["Yes"] == pytest.approx(alone["Yes"], abs=0.05)
    assert batched[-1]["No"] == pytest.approx(alone["No"], abs=0.05)


def test_raw_completion_cuts_at_stop_strings(generator):
    out = generator.complete(["def add(a, b):\n", "class Stack:\n"], max_new_tokens=24, n=1, temperature=0.9,
                             seed=1, stop=["\n", "def"])
    assert all("\n" not in t and "def" not in t for group in out for t in group)
