#!/usr/bin/env bash
# The main job: builds the shardalg command-line program and runs its embedded default example,
# a reshard of Llama-3-8B shapes from FSDP2+TP on 8 ranks (dp=4, tp=2) to ZeRO-3 on 6 ranks:
# the full-size plan computed, verified and summarized, then executed in the host simulator on a
# copy scaled down 16x with every element checked; then that copy saved as a PyTorch DCP checkpoint
# at 8 ranks and resharded on disk to the 6-rank layout, checked element by element. Extra
# arguments go to `shardalg demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmake --preset main >/dev/null
cmake --build --preset main -j "$(nproc)"
build/main/tools/shardalg demo "$@"
