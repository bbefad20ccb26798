"""The GPU suite: the CUDA paths of fine-tuning, gradient features, generation and the sandboxed
evaluation, through the functions the workflow's rules call.  ``bench/gpu.sh`` runs it on a GPU
machine; without CUDA every test here is skipped, saying why, and ``SCODER_GPU_REHEARSAL=cpu``
runs it on CPU with small models (all but the CUDA-specific checks), to rehearse a GPU run::

    python3 -m pytest -q tests/gpu                          # on a GPU machine
    SCODER_GPU_REHEARSAL=cpu python3 -m pytest -q tests/gpu  # a rehearsal on CPU
"""
import os
from pathlib import Path

import pytest
import torch

from gpu_support import build_model, random_adapter, skip_reason, target_device

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=skip_reason()) if target_device() is None else None
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if skip:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Overrides the suite-wide single thread: the CPU references here are a 135M model's
    gradients, which want the GPU machine's cores (a rehearsal keeps to one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1 if target_device() == "cpu" else min(16, os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def device():
    return target_device()


@pytest.fixture(scope="session")
def cuda(device):
    return device == "cuda"


@pytest.fixture(scope="session")
def embedded_model(tmp_path_factory, device):
    """A random-weight model of the embedded model's shape (SmolLM2-135M; small in a rehearsal)."""
    return build_model("embedded", tmp_path_factory.mktemp("embedded") / "model", device)


@pytest.fixture(scope="session")
def reference_adapter(embedded_model, tmp_path_factory, device):
    """The paper's reference LoRA (r=128, alpha=512 on q/k/v/o) with random weights."""
    return random_adapter(embedded_model, tmp_path_factory.mktemp("reference") / "adapter", device)


@pytest.fixture(autouse=True)
def _fresh_peak_memory(cuda):
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    yield
