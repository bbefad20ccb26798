"""Shared fixtures: a micro model (random weights, SmolLM2 tokenizer) built once per session."""
import pytest

from scoder.models import build_micro_model


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory):
    """Path of a ~3M-parameter random Llama with SmolLM2's tokenizer and chat template."""
    return str(build_micro_model(tmp_path_factory.mktemp("micro") / "model"))
