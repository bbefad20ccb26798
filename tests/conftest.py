"""Shared fixtures: a micro model (random weights, SmolLM2 tokenizer) built once per session."""
import pytest

from micro_model import build_micro_model


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory):
    """Path of a ~3M-parameter random Llama with SmolLM2's tokenizer and chat template."""
    return str(build_micro_model(tmp_path_factory.mktemp("micro") / "model"))


@pytest.fixture(scope="session")
def sharp_micro_model(tmp_path_factory, micro_model):
    """A micro model whose next-token distribution depends strongly on the input
    (larger random weights): numerical equivalence checks on it can fail."""
    return str(build_micro_model(tmp_path_factory.mktemp("sharp") / "model", tokenizer_dir=micro_model,
                                 initializer_range=0.2))


@pytest.fixture(scope="session")
def base_micro_model(tmp_path_factory, micro_model):
    """The sharp micro model with a base model's tokenizer: no chat template."""
    return str(build_micro_model(tmp_path_factory.mktemp("base") / "model", tokenizer_dir=micro_model,
                                 initializer_range=0.2, chat_template=False))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """torch's two OpenMP threads run ~20x slower than one when the 2-core machine
    is shared with other work (measured); tests use one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
