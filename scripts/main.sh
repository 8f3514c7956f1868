#!/usr/bin/env bash
# The main job: builds the shardalg command-line program and runs it on its embedded default
# example (an FSDP2 + TP layout of a Llama-3-8B MLP weight on dp=4, tp=2). Extra arguments go to
# `shardalg slices`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset main >/dev/null
cmake --build --preset main -j "$(nproc)"
build/main/tools/shardalg slices "$@"
