#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds the NCCL backend (CUDA kernels, GPU tests, GPU
# benchmark) and runs the GPU tests and the pack/unpack benchmark. Results go to stdout and, when
# $OUT is set (the device tool), to $OUT/gpu_tests.txt and $OUT/gpu_pack_bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh || echo "gpu.sh: bootstrap failed (offline?); building with what is installed"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
build=build/gpu
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSHARDALG_CUDA=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target shardalg_gpu_tests gpu_pack_bench
out=${OUT:-$build}
"$build/tests/shardalg_gpu_tests" | tee "$out/gpu_tests.txt"
"$build/bench/gpu_pack_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/gpu_pack_bench.json" --benchmark_out_format=json
